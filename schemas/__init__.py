"""Shared contracts: the messages that cross service boundaries.

These models are the source of truth; ``schemas/json/`` holds their exported
JSON Schema (``healthstream schemas export``) for producers in other languages.
"""

from schemas.alerts import AlertReason, AlertSeverity, RiskAlert
from schemas.events import EVENT_TOPIC_BY_TYPE, Event, EventType
from schemas.health import Band, Components, Driver, HealthUpdate

__all__ = [
    "EVENT_TOPIC_BY_TYPE",
    "AlertReason",
    "AlertSeverity",
    "Band",
    "Components",
    "Driver",
    "Event",
    "EventType",
    "HealthUpdate",
    "RiskAlert",
]
