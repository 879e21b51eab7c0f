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


@pytest.mark.parametrize("field", ["event_id", "account_id", "name"])
@pytest.mark.parametrize("blank", [" ", "   ", "\u3000", "\u00a0 \u2003"])
def test_blank_identifiers_are_refused(field: str, blank: str) -> None:
    with pytest.raises(ValidationError, match="blank") as info:
        Event.model_validate({**VALID, field: blank})
    assert info.value.errors()[0]["loc"] == (field,)
    # Surrounding white space is kept as it is: only a value of nothing else is refused.
    assert getattr(Event.model_validate({**VALID, field: " x "}), field) == " x "


@pytest.mark.parametrize(
    ("name", "score"),
    [
        ("nps.response", 7.5),
        ("nps.response", 10.01),
        ("csat.response", 4.5),
        ("nps.response", -0.5),
    ],
)
def test_survey_scores_are_whole_points(name: str, score: float) -> None:
    body = {**VALID, "type": "feedback", "name": name, "properties": {"score": score}}
    with pytest.raises(ValidationError, match="must be an integer"):
        Event.model_validate(body)


def test_integral_float_score_is_an_integer() -> None:
    body = {**VALID, "type": "feedback", "name": "nps.response", "properties": {"score": 7.0}}
    score = Event.model_validate(body).properties["score"]
    assert score == 7 and type(score) is int


@pytest.mark.parametrize(
    "stamp",
    [
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "0001-01-01T00:59:59.999999+01:00",
    ],
)
def test_timestamps_outside_utc_years_1_to_9999_are_refused(stamp: str) -> None:
    with pytest.raises(ValidationError, match="representable range") as info:
        Event.model_validate({**VALID, "occurred_at": stamp})
    assert info.value.errors()[0]["loc"] == ("occurred_at",)


@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59+01:00"]
)
def test_extreme_timestamps_inside_the_utc_range_are_valid(stamp: str) -> None:
    assert Event.model_validate({**VALID, "occurred_at": stamp}).occurred_at.tzinfo is not None


def test_exported_schema_documents_the_text_rule() -> None:
    import re

    from healthstream.contract import TEXT_PATTERN

    schema = Event.model_json_schema()
    for field in ("event_id", "account_id", "name"):
        assert schema["properties"][field]["pattern"] == TEXT_PATTERN
    pattern = re.compile(TEXT_PATTERN)
    assert pattern.match("acme") and pattern.match(" a ")
    assert not pattern.match(" ") and not pattern.match("a\x00")
