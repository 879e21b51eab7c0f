"""parse_event accepts and rejects exactly what schemas.Event does, and names the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import Event
from services.scorer.core import CoreEvent, InvalidEvent, parse_event
from services.scorer.core.events import _check_properties as check_properties
from services.scorer.core.events import _props_ok as props_ok
from services.scorer.core.events import _timestamp as fast_timestamp
from services.scorer.core.events import format_timestamp, parse_timestamp

VALID: dict[str, Any] = {
    "event_id": "e1",
    "account_id": "acme",
    "type": "billing",
    "name": "payment.failed",
    "occurred_at": "2024-05-01T12:00:00Z",
    "properties": {"amount": 99.5, "currency": "USD", "extra": {"kept": True}},
}


def test_valid_event_becomes_core_event() -> None:
    event = parse_event(orjson.dumps(VALID))
    assert event == CoreEvent(
        "e1", "acme", "billing", "payment.failed", 1714564800.0, VALID["properties"]
    )
    assert parse_event(VALID) == event
    assert parse_event(orjson.dumps(VALID).decode()) == event


def test_timestamp_zone_is_applied() -> None:
    event = parse_event({**VALID, "occurred_at": "2024-05-01T14:00:00.5+02:00"})
    assert event.ts == 1714564800.5


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
        ({"source": "s" * 65}, "source"),
        ({"properties": []}, "properties"),
        ({"properties": {"amount": float("inf")}}, "properties.amount"),
        ({"properties": {"quantity": -1}}, "properties.quantity"),
        ({"properties": {"currency": "DOLLARS"}}, "properties.currency"),
        ({"properties": {"priority": "p1"}}, "properties.priority"),
        ({"properties": {"user_id": 7}}, "properties.user_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_events_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event({**VALID, **patch})
    assert info.value.field == field
    with pytest.raises(ValidationError):
        Event.model_validate({**VALID, **patch})


def test_missing_field_and_garbage_are_named() -> None:
    body = {k: v for k, v in VALID.items() if k != "account_id"}
    with pytest.raises(InvalidEvent) as info:
        parse_event(body)
    assert info.value.field == "account_id"
    with pytest.raises(InvalidEvent) as info:
        parse_event(b"{not json")
    assert info.value.field == "body"
    with pytest.raises(InvalidEvent) as info:
        parse_event(b"[1, 2]")
    assert info.value.field == "body"


def test_nps_score_range() -> None:
    base = {**VALID, "type": "feedback", "name": "nps.response"}
    assert parse_event({**base, "properties": {"score": 10}}).properties["score"] == 10
    for bad in (11, -1, True, "9", None):
        with pytest.raises(InvalidEvent):
            parse_event({**base, "properties": {"score": bad}})


# ---------------------------------------------------------------- agreement
_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
_anything = st.one_of(_json_scalar, st.lists(_json_scalar, max_size=2))
_identifier = st.one_of(
    st.text(min_size=0, max_size=4),
    st.sampled_from(["a\x1fb", "x" * 256, "x" * 257, " ", "é", "a\u0085"]),
    _anything,
)
_timestamp = st.one_of(
    st.sampled_from(
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01t12:00:00z",
            "2024-05-01 12:00:00+05:30",
            "2024-05-01T12:00:00.123456789-01:00",
            "2024-05-01T12:00:00",
            "2024-13-01T12:00:00Z",
            "2024-02-29T23:59:59Z",
            "2023-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2024-05-01T24:00:00Z",
            "2024-05-01",
        ]
    ),
    _anything,
)
_props = st.dictionaries(
    st.sampled_from(
        [
            "amount",
            "mrr",
            "quantity",
            "currency",
            "priority",
            "score",
            "user_id",
            "feature",
            "status",
            "plan",
            "csm",
            "other",
        ]
    ),
    st.one_of(
        _anything,
        st.sampled_from(["USD", "usd", "US1", "urgent", "low", "p1"]),
        st.integers(min_value=-2, max_value=12),
    ),
    max_size=4,
)


_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _identifier,
    "account_id": _identifier,
    "type": st.one_of(st.sampled_from(["usage", "feedback", "billing", "Usage"]), _anything),
    "name": st.one_of(st.sampled_from(["nps.response", "csat.response", "login"]), _identifier),
    "occurred_at": _timestamp,
    "source": st.one_of(st.none(), st.text(max_size=70), _anything),
    "properties": st.one_of(_props, _anything),
}


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid envelope with 0-2 fields replaced, removed or added, and random properties."""
    body: dict[str, Any] = {
        "event_id": "e1",
        "account_id": "acme",
        "type": "feedback",
        "name": draw(st.sampled_from(["nps.response", "csat.response", "login"])),
        "occurred_at": "2024-05-01T12:00:00Z",
        "properties": draw(
            st.one_of(
                st.fixed_dictionaries(
                    {"score": st.integers(1, 5)},
                    optional={
                        "amount": st.floats(-1e6, 1e6),
                        "quantity": st.one_of(st.integers(0, 9), st.floats(-1, 9)),
                        "currency": st.just("EUR"),
                        "priority": st.just("high"),
                        "user_id": st.text(max_size=3),
                        "nested": _anything,
                    },
                ),
                _props,
            )
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(_FIELD_VALUES)), max_size=2)):
        action = draw(st.sampled_from(["replace", "replace", "remove"]))
        if action == "remove":
            body.pop(key, None)
        else:
            body[key] = draw(_FIELD_VALUES[key])
    if draw(st.integers(0, 9)) == 0:
        body["extra"] = 1
    return body


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(envelopes())
def test_parse_event_agrees_with_schema(body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    try:
        expected: Event | None = Event.model_validate_json(raw)
    except ValidationError:
        expected = None
    try:
        got: CoreEvent | None = parse_event(raw)
    except InvalidEvent:
        got = None
    assert (got is None) == (expected is None), (body, expected, got)
    if got is not None and expected is not None:
        assert got.event_id == expected.event_id
        assert got.ts == pytest.approx(expected.occurred_at.timestamp(), abs=1e-6)
        assert got.properties == expected.properties
    # A mapping input follows the same rules as bytes.
    try:
        from_mapping: CoreEvent | None = parse_event(body)
    except InvalidEvent:
        from_mapping = None
    assert (from_mapping is None) == (got is None)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["T", "t", " "]),
)
def test_canonical_timestamp_fast_path_equals_full_parser(moment: datetime, sep: str) -> None:
    """The cached per-hour path gives exactly what the full RFC 3339 parser gives."""
    m = moment
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}{sep}{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"
    assert fast_timestamp(text) == parse_timestamp(text)


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z",
        "2024-05-01T12:00:60Z",
        "2024-02-30T12:00:00Z",
    ],
)
def test_canonical_timestamp_fast_path_rejects_what_the_parser_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)
    with pytest.raises(ValueError):
        fast_timestamp(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(0, 253402300799).map(float), st.floats(0, 4e9)))
def test_format_timestamp_fast_path_equals_strftime(ts: float) -> None:
    """Whole seconds use a cached per-hour prefix; the text is what strftime gives."""
    moment = datetime.fromtimestamp(ts, UTC)
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    assert format_timestamp(ts) == moment.strftime(pattern)
    assert parse_timestamp(format_timestamp(ts)) == pytest.approx(ts, abs=1e-6)


@settings(max_examples=500, deadline=None)
@given(_props, st.sampled_from(["login", "order.placed", "ticket.opened"]))
def test_quick_property_check_accepts_only_what_the_full_check_accepts(
    props: dict[str, Any], name: str
) -> None:
    """The one-pass property check may defer to the full check, never wave through."""
    if props_ok(props):
        check_properties(name, props)  # must not raise
