"""Shared contracts: the messages that cross service boundaries.

The event rules are declared once, as plain data, in ``healthstream.contract``;
these models are built from them and ``schemas/json/`` holds their exported JSON
Schema (``healthstream schemas export``) for producers in other languages.
"""

from schemas.alerts import AlertReason, AlertSeverity, RiskAlert
from schemas.events import Event, EventType
from schemas.health import Band, Components, Driver, HealthUpdate

__all__ = [
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
