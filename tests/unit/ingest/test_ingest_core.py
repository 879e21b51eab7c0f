"""Pure pieces of ingest: dedupe window, body parsing, validation errors, DLQ records."""

from __future__ import annotations

import gzip

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError

from healthstream.deadletter import read_headers
from schemas import Event
from services.ingest.dedupe import DedupeWindow
from services.ingest.errors import ApiError
from services.ingest.parsing import batch_items, gunzip_bounded, parse_json, parse_ndjson
from services.ingest.publisher import canonical_json, dead_letter_record
from services.ingest.validation import validate_items

VALID = {
    "event_id": "e1",
    "account_id": "a1",
    "type": "usage",
    "name": "login",
    "occurred_at": "2024-05-01T12:00:00.123456789+02:00",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dedupe_window_expires_and_is_bounded() -> None:
    clock = Clock()
    window = DedupeWindow(window_seconds=60, max_entries=3, clock=clock)
    assert window.reserve(["a", "b", "a"]) == [True, True, False]
    window.commit(["a", "b"])
    assert window.reserve(["a", "c"]) == [False, True]
    window.commit(["c"])
    clock.now += 61
    assert window.reserve(["a"]) == [True]  # forgotten after the window
    window.commit(["a"])
    window.commit(["d", "e", "f"])
    assert len(window) == 3  # oldest evicted beyond max_entries
    assert window.reserve(["a", "f"]) == [True, False]


def test_dedupe_released_ids_can_be_retried_and_pending_ids_are_duplicates() -> None:
    window = DedupeWindow(window_seconds=60, max_entries=10)
    assert window.reserve(["x"]) == [True]
    assert window.reserve(["x"]) == [False]  # a concurrent request carrying x
    window.release(["x"])  # the first publish failed
    assert window.reserve(["x"]) == [True]  # the retry is published


def test_disabled_window_remembers_nothing() -> None:
    window = DedupeWindow(window_seconds=0, max_entries=10)
    window.reserve(["x"])
    window.commit(["x"])
    assert window.reserve(["x"]) == [True]


def test_malformed_json_reports_line_and_column() -> None:
    with pytest.raises(ApiError) as caught:
        parse_json(b'{\n  "a": tru }')
    assert caught.value.status == 400
    assert (caught.value.body.line, caught.value.body.column) == (2, 8)
    with pytest.raises(ApiError) as caught:
        parse_ndjson(b'{"a": 1}\n\n{"b": }\n')
    assert caught.value.body.line == 3
    assert parse_ndjson(b'{"a": 1}\r\n\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]


def test_batch_shapes() -> None:
    assert batch_items({"x": 1}) == [{"x": 1}]
    assert batch_items([1, 2]) == [1, 2]
    assert batch_items({"events": [1]}) == [1]
    for bad in ({"events": 1}, {"events": [], "more": 1}, "text", 3):
        with pytest.raises(ApiError) as caught:
            batch_items(bad)
        assert caught.value.status == 422


def test_gunzip_is_bounded_and_handles_multiple_members() -> None:
    two = gzip.compress(b"abc") + gzip.compress(b"def")
    assert gunzip_bounded(two, 1024) == b"abcdef"
    with pytest.raises(ApiError) as caught:
        gunzip_bounded(gzip.compress(b"0" * 5000), 1024)
    assert caught.value.status == 413
    with pytest.raises(ApiError) as caught:
        gunzip_bounded(gzip.compress(b"0" * 100)[:-6], 1024)
    assert caught.value.status == 400


def test_validation_names_the_field_and_sets_the_source() -> None:
    items = [
        dict(VALID),
        {**VALID, "properties": {"amount": float("inf")}},
        {**VALID, "properties": {"quantity": -1}},
        {**VALID, "properties": {"currency": "EURO"}},
        {**VALID, "name": "csat.response", "type": "feedback", "properties": {"score": 0}},
        {**VALID, "properties": {"priority": "p1"}},
        {**VALID, "properties": {"plan": 3}},
        {**VALID, "name": ""},
        {**VALID, "unexpected": 1},
        {**VALID, "source": "replay"},
    ]
    result = validate_items(items, default_source="api")
    assert [(e.index, e.loc) for e in result.errors] == [
        (1, ["properties", "amount"]),
        (2, ["properties", "quantity"]),
        (3, ["properties", "currency"]),
        (4, ["properties", "score"]),
        (5, ["properties", "priority"]),
        (6, ["properties", "plan"]),
        (7, ["name"]),
        (8, ["unexpected"]),
    ]
    assert [e.source for e in result.events] == ["api", "replay"]
    assert all(not e.msg.startswith("Value error") for e in result.errors)


def test_canonical_json_is_compact_normalised_and_equal_to_orjson() -> None:
    event = Event.model_validate({**VALID, "source": "api", "properties": {"x": [1, None]}})
    value = canonical_json(event)
    assert value == orjson.dumps(event.model_dump(mode="json", exclude_none=True))
    decoded = orjson.loads(value)
    assert decoded["occurred_at"] == "2024-05-01T12:00:00.123456+02:00"
    assert decoded["properties"] == {"x": [1, None]}
    assert Event.model_validate_json(value) == event


def test_dead_letter_record_carries_reason_and_fits() -> None:
    event = Event.model_validate({**VALID, "properties": {"blob": "x" * 5000}})
    value = canonical_json(event)
    error = MessageSizeTooLargeError("too big")
    small, headers = dead_letter_record("usage-events", value, error, 1024 * 1024)
    assert orjson.loads(small)["properties"]["blob"] == "x" * 5000
    why = read_headers(headers)
    assert "too big" in why["error"]
    assert why["error"].startswith("MessageSizeTooLargeError: ")
    assert (why["source_topic"], why["error_stage"]) == ("usage-events", "publish")
    assert "original_size" not in why
    tight, headers = dead_letter_record("usage-events", value, error, 4096)
    assert len(tight) + sum(len(k) + len(v) for k, v in headers) < 4096 // 2
    assert value.startswith(tight) and read_headers(headers)["original_size"] == str(len(value))


def test_escaped_lone_surrogates_are_a_422_naming_the_field_not_a_syntax_error() -> None:
    cases = {
        b'[{"a": 1}, {"event_id": "x\\ud800"}]': (1, ["event_id"]),
        b'{"events": [{"properties": {"k\\udc00": 1}}]}': (0, ["properties", "k\\udc00"]),
        b'{"name": "\\ud800"}': (0, ["name"]),
    }
    for body, (index, loc) in cases.items():
        with pytest.raises(ApiError) as caught:
            parse_json(body)
        assert caught.value.status == 422
        [error] = caught.value.body.errors or []
        assert (error.index, error.loc) == (index, loc)
    with pytest.raises(ApiError) as caught:
        parse_ndjson(b'{}\n\n{"x": "\\ud800"}')
    assert [(e.index, e.loc) for e in caught.value.body.errors or []] == [(1, ["x"])]
    with pytest.raises(ApiError) as caught:
        parse_json(b'[NaN, "\\ud800"]')  # still a syntax error: NaN is not JSON
    assert caught.value.status == 400
