"""The body limits, the event-time window and the ownership rule, without a server."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.errors import ApiError
from services.ingest.parsing import check_depth, gunzip_bounded, nesting_depth, parse_ndjson
from services.ingest.validation import EventTimeWindow, Ownership, validate_items

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW = EventTimeWindow(datetime(1970, 1, 1, tzinfo=UTC), timedelta(minutes=5))


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_nesting_depth_is_exact_whatever_the_strings_hold(value: object) -> None:
    assert nesting_depth(json.dumps(value).encode()) == _depth(value)


def test_check_depth_refuses_only_past_the_limit() -> None:
    check_depth(b"[" * 64 + b"]" * 64, 64)
    with pytest.raises(ApiError) as info:
        check_depth(b"[" * 65 + b"]" * 65, 64)
    assert (info.value.status, info.value.body.error) == (400, "json_too_deep")
    check_depth(b'["' + b"[" * 500 + b'"]', 64)  # brackets in a string do not nest


def test_ndjson_depth_error_names_the_line() -> None:
    body = b'{"a": 1}\n\n' + b"[" * 100 + b"]" * 100 + b"\n"
    with pytest.raises(ApiError) as info:
        parse_ndjson(body, 64)
    assert info.value.body.line == 3


def test_gunzip_handles_members_and_bounds_them() -> None:
    assert gunzip_bounded(gzip.compress(b'{"a":') + gzip.compress(b"1}"), 100) == b'{"a":1}'
    big = b"x" * 200_000  # several inflate chunks in one member
    assert gunzip_bounded(gzip.compress(big), 300_000) == big
    with pytest.raises(ApiError, match="more than 3 members"):
        gunzip_bounded(gzip.compress(b"") * 4, 100, max_members=3)
    with pytest.raises(ApiError, match="larger than"):
        gunzip_bounded(gzip.compress(big), 100_000)
    with pytest.raises(ApiError, match="truncated"):
        gunzip_bounded(gzip.compress(big)[:-4], 300_000)
    with pytest.raises(ApiError, match="not valid gzip"):
        gunzip_bounded(gzip.compress(b"{}") + b"junk", 100)


def _event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "e1",
        "account_id": "acme",
        "type": "usage",
        "name": "login",
        "occurred_at": "2024-05-01T12:00:00Z",
    }
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [
        ("1970-01-01T00:00:00Z", True),
        ("1969-12-31T23:59:59Z", False),
        ("2026-01-01T00:05:00Z", True),
        ("2026-01-01T00:05:01Z", False),
        ("2026-01-01T01:05:00+01:00", True),  # the same instant in another zone
    ],
)
def test_event_time_window(stamp: str, ok: bool) -> None:
    result = validate_items([_event(occurred_at=stamp)], "api", window=WINDOW, now=NOW)
    assert (len(result.events) == 1) is ok
    if not ok:
        assert result.errors[0].loc == ["occurred_at"]


def test_an_unbounded_future_is_allowed_when_configured() -> None:
    wide = EventTimeWindow(datetime(1, 1, 1, tzinfo=UTC), timedelta(days=10**7))
    result = validate_items([_event(occurred_at="9999-12-31T00:00:00Z")], "api", window=wide)
    assert len(result.events) == 1


def test_ownership_is_kept_only_where_it_may_be_stated() -> None:
    owner = _event(type="account", name="account.updated", properties={"csm": "ann"})
    claim = _event(event_id="e2", type="billing", name="invoice.paid", properties={"csm": "x"})
    kept = validate_items([owner, claim], "api", ownership=Ownership.ACCOUNT_EVENTS)
    assert [e.properties.get("csm") for e in kept.events] == ["ann", None]
    assert kept.ownership_ignored == 1
    never = validate_items([owner, claim], "segment", ownership=Ownership.NEVER)
    assert [e.properties for e in never.events] == [{}, {}]
    assert never.ownership_ignored == 2
    refused = validate_items([owner, claim], "api", ownership=Ownership.REFUSED)
    assert [(e.index, e.loc) for e in refused.errors] == [(0, ["properties", "csm"])]
    assert [e.properties for e in refused.events] == [{}]
