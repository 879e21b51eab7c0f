"""The contracts: strict where typed, open where not, and the committed JSON Schema in sync."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from schemas import Event
from schemas.export import DEFAULT_DIR, render

VALID = {
    "event_id": "e1",
    "account_id": "acme",
    "type": "billing",
    "name": "payment.failed",
    "occurred_at": "2024-05-01T12:00:00Z",
    "properties": {"amount": 99.5, "currency": "USD", "extra": {"kept": True}},
}


def test_committed_json_schema_matches_models() -> None:
    for name, text in render().items():
        assert (DEFAULT_DIR / name).read_text() == text, (
            f"{name} drifted: healthstream schemas export"
        )


def test_valid_event_keeps_unknown_properties() -> None:
    event = Event.model_validate(VALID)
    assert event.occurred_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert event.properties["extra"] == {"kept": True}


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"occurred_at": 1714564800}, "occurred_at"),
        ({"occurred_at": "2024-05-01T12:00:00"}, "occurred_at"),
        ({"occurred_at": "2024-02-30T12:00:00Z"}, "occurred_at"),
        ({"type": "Usage"}, "type"),
        ({"event_id": ""}, "event_id"),
        ({"account_id": "a\x00b"}, "account_id"),
        ({"name": "x" * 129}, "name"),
        ({"properties": {"amount": float("inf")}}, "properties.amount"),
        ({"properties": {"mrr": 10**400}}, "properties.mrr"),
        ({"properties": {"quantity": -1}}, "properties.quantity"),
        ({"properties": {"quantity": 2.5}}, "properties.quantity"),
        ({"properties": {"currency": "DOLLARS"}}, "properties.currency"),
        ({"properties": {"priority": "p1"}}, "properties.priority"),
    ],
)
def test_invalid_events_name_the_field(patch: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Event.model_validate({**VALID, **patch})
    assert field in str(info.value)


def test_survey_scores_are_range_checked() -> None:
    nps = {**VALID, "type": "feedback", "name": "nps.response", "properties": {"score": 11}}
    with pytest.raises(ValidationError, match="0 to 10"):
        Event.model_validate(nps)
    csat = {**nps, "name": "csat.response", "properties": {"score": 0}}
    with pytest.raises(ValidationError, match="1 to 5"):
        Event.model_validate(csat)
    assert Event.model_validate({**nps, "properties": {"score": 6}}).properties["score"] == 6


def test_integral_float_quantity_is_an_integer() -> None:
    # JSON Schema (and our OpenAPI) call 3.0 an integer; the scorer must still get an int.
    event = Event.model_validate({**VALID, "properties": {"quantity": 3.0}})
    assert event.properties["quantity"] == 3
    assert type(event.properties["quantity"]) is int
