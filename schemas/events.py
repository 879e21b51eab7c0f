"""The event envelope: what every source sends and every topic carries.

The rules come from ``healthstream.contract``; this module turns them into a
pydantic model and its JSON Schema (``schemas/json/event.schema.json``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from healthstream.contract import (
    EVENT_TYPES,
    SOURCE_MAX_LENGTH,
    TYPE_MESSAGE,
    check_properties,
    properties_json_schema,
    score_rules_json_schema,
)
from schemas._types import EventName, Identifier, Timestamp


class EventType(StrEnum):
    """What kind of event; each type has its own topic (``<type>-events``)."""

    USAGE = "usage"
    TICKET = "ticket"
    BILLING = "billing"
    FEEDBACK = "feedback"
    ACCOUNT = "account"


# The enum is spelled out for typed code; it must be the declaration's list.
if tuple(EventType) != EVENT_TYPES:
    raise ImportError("schemas.EventType must list healthstream.contract.EVENT_TYPES in order")


def _score_rules(schema: dict[str, Any]) -> None:
    schema["allOf"] = score_rules_json_schema()


class Event(BaseModel):
    """One canonical event. Unknown names and extra properties are kept: telemetry evolves."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
        json_schema_extra=_score_rules,
    )

    event_id: Identifier = Field(description="Globally unique id; the dedupe key.")
    account_id: Identifier = Field(description="The account; the Kafka message key.")
    type: EventType = Field(description="Selects the topic.")
    name: EventName = Field(
        description="What happened, e.g. login, feature.used, ticket.opened, payment.failed."
    )
    occurred_at: Timestamp = Field(description="Event time, RFC 3339 with a zone.")
    source: str | None = Field(
        default=None,
        max_length=SOURCE_MAX_LENGTH,
        description="api, segment, zendesk, stripe, replay, ...",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Free-form; the well-known keys are typed (null counts as absent). A survey "
            "(nps.response, csat.response) requires an integer score in its range."
        ),
        json_schema_extra=properties_json_schema(),
    )

    @field_validator("type", mode="before")
    @classmethod
    def _type_is_exact(cls, value: Any) -> Any:
        # Reject "Usage" or " usage": a typo must fail loudly, not land on the wrong topic.
        if not isinstance(value, str) or value not in EventType._value2member_map_:
            raise ValueError(TYPE_MESSAGE)
        return value

    @model_validator(mode="after")
    def _well_known_properties(self) -> Event:
        check_properties(self.name, self.properties)
        return self
