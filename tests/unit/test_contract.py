"""The one event contract and its three readers: the pydantic model, the fast parser
and the exported JSON Schema accept and reject the same envelopes.

``healthstream.contract`` declares the rules; ``schemas.Event``, the scorer's
``parse_event`` and ``schemas/json/event.schema.json`` are built from it. These
properties check that each reader says what the declaration says, field for field.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from healthstream import contract
from healthstream.settings import Topics
from schemas import Event, EventType
from schemas.export import DEFAULT_DIR
from services.ingest.validation import _first_error
from services.scorer.core import InvalidEvent, parse_event

_SCHEMA = Draft202012Validator(json.loads((DEFAULT_DIR / "event.schema.json").read_text()))

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " ", "USD", "usd", "US1", "EURO", "low", "urgent", "p1", "x"]),
    st.text(max_size=4),
)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=2), st.dictionaries(st.just("k"), _scalar))
_well_known = (
    *contract.NUMBER_PROPERTIES,
    *contract.COUNT_PROPERTIES,
    *contract.STRING_PROPERTIES,
    contract.CURRENCY_PROPERTY,
    contract.PRIORITY_PROPERTY,
    contract.SCORE_PROPERTY,
    "other",
)
_properties = st.dictionaries(
    st.sampled_from(_well_known),
    st.one_of(_value, st.integers(-2, 12), st.sampled_from([3.0, 7.0, 2.5, -0.0, 1e308])),
    max_size=5,
)
_text = st.one_of(
    st.sampled_from(["e1", " ", "\u3000", "a\x1fb", "a\x85", "x" * 256, "x" * 257, "é", " x "]),
    st.text(max_size=3),
    _scalar,
)
#: Timestamps only from those JSON Schema can judge (it cannot tell 2023-02-29 from a date).
_time = st.sampled_from(
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5+02:00", "2024-05-01t12:00:00z"]
)
_fields: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _text,
    "account_id": _text,
    "type": st.one_of(st.sampled_from([*contract.EVENT_TYPES, "Usage", " usage"]), _scalar),
    "name": st.one_of(st.sampled_from([*contract.SCORE_RANGES, "login"]), _text),
    "source": st.one_of(st.none(), st.text(max_size=66), _scalar),
    "properties": st.one_of(_properties, _value),
}


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A valid envelope with some fields replaced or removed, and random properties."""
    body: dict[str, Any] = {
        "event_id": "e1",
        "account_id": "acme",
        "type": draw(st.sampled_from(contract.EVENT_TYPES)),
        "name": draw(st.sampled_from([*contract.SCORE_RANGES, "login", "payment.failed"])),
        "occurred_at": draw(_time),
        "properties": draw(_properties),
    }
    for key in draw(st.lists(st.sampled_from(sorted(_fields)), max_size=2)):
        if draw(st.integers(0, 3)) == 0:
            body.pop(key, None)
        else:
            body[key] = draw(_fields[key])
    if draw(st.integers(0, 15)) == 0:
        body["unexpected"] = 1
    return body


def _pydantic(raw: bytes) -> tuple[Event | None, set[str]]:
    """The model's verdict and every field it names (a property rule relocated as ingest does)."""
    try:
        return Event.model_validate_json(raw), set()
    except ValidationError as exc:
        fields = {".".join(str(part) for part in error["loc"]) for error in exc.errors()}
        first = _first_error(0, exc)
        return None, {*fields, ".".join(str(part) for part in first.loc)}


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(envelopes())
def test_fast_parser_pydantic_and_json_schema_agree(body: dict[str, Any]) -> None:
    try:
        raw = orjson.dumps(body)
    except TypeError:  # a lone surrogate: not JSON at all
        return
    expected, pydantic_fields = _pydantic(raw)
    try:
        got = parse_event(raw)
        core_field = None
    except InvalidEvent as exc:
        got, core_field = None, exc.field
    assert (got is None) == (expected is None), (body, expected, got)
    if got is not None and expected is not None:
        assert got.properties == expected.properties
        assert [type(v) for v in got.properties.values()] == [
            type(v) for v in expected.properties.values()
        ]
    else:
        # The parser stops at its first error; the model names them all.
        assert core_field in pydantic_fields, (body, core_field, pydantic_fields)
    # JSON Schema knows no lone surrogates; every other rule is in the exported schema.
    assert _SCHEMA.is_valid(orjson.loads(raw)) == (expected is not None), (body, expected)


def test_the_declaration_feeds_the_model_the_topics_and_the_parser() -> None:
    assert tuple(EventType) == contract.EVENT_TYPES
    topics = Topics("t.")
    assert topics.events == [f"t.{t}-events" for t in contract.EVENT_TYPES]
    assert topics.dlq(topics.risk_alerts) == "t.risk-alerts.dlq"
    schema = Event.model_json_schema()
    assert (
        schema["properties"]["properties"]["properties"]
        == (contract.properties_json_schema()["properties"])
    )
    assert schema["allOf"] == contract.score_rules_json_schema()


def test_property_rules_are_schema_not_prose() -> None:
    """Each well-known rule refuses its counter-example in the exported JSON Schema."""
    base = {
        "event_id": "e1",
        "account_id": "acme",
        "type": "feedback",
        "name": "login",
        "occurred_at": "2024-05-01T12:00:00Z",
    }
    assert _SCHEMA.is_valid(base)
    for props, name in [
        ({"amount": "9"}, "login"),
        ({"mrr": 10**400}, "login"),
        ({"quantity": -1}, "login"),
        ({"quantity": 2.5}, "login"),
        ({"currency": "US1"}, "login"),
        ({"priority": "p1"}, "login"),
        ({"csm": 3}, "login"),
        ({}, "nps.response"),
        ({"score": 11}, "nps.response"),
        ({"score": 0}, "csat.response"),
        ({"score": 4.5}, "csat.response"),
    ]:
        body = {**base, "name": name, "properties": props}
        assert not _SCHEMA.is_valid(body), body
        try:
            Event.model_validate(body)
        except ValidationError:
            continue
        raise AssertionError(f"the model accepted {body}")
