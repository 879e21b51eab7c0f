"""Fast event parsing: the envelope rules of ``healthstream.contract`` without pydantic.

Why: pydantic costs ~20-40 us per event, which alone would cap the scorer far
below its 100k events/s budget. This module applies exactly the same accept /
reject rules (a hypothesis test in tests/unit/scorer keeps the two in step) in a
few microseconds and yields a slotted ``CoreEvent``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from healthstream.contract import (
    COUNT_PROPERTIES,
    CURRENCY_PROPERTY,
    EVENT_FIELDS,
    EVENT_TYPES,
    IDENTIFIER_MAX_LENGTH,
    NAME_MAX_LENGTH,
    NUMBER_PROPERTIES,
    PRIORITIES,
    PRIORITY_PROPERTY,
    SCORE_RANGES,
    SOURCE_MAX_LENGTH,
    STRING_PROPERTIES,
    TYPE_MESSAGE,
    PropertyError,
    check_properties,
    parse_rfc3339,
    text_problem,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Lookup tables of the hot path, built from the contract's declaration.
_TYPES = frozenset(EVENT_TYPES)
_FIELDS = frozenset(EVENT_FIELDS)
_PRIORITIES = frozenset(PRIORITIES)
_STRING_PROP_SET = frozenset(STRING_PROPERTIES)
_NUMBER_PROPS = frozenset(NUMBER_PROPERTIES)
_COUNT_PROPS = frozenset(COUNT_PROPERTIES)
_NO_PROPS: dict[str, Any] = {}
#: Well-known keys the quick check leaves to the full one.
_FULL_CHECK_PROPS = frozenset({CURRENCY_PROPERTY})


class InvalidEvent(ValueError):
    """A rejected event; ``field`` names the offending field (dotted for properties)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CoreEvent:
    """One validated event, as the core sees it (event time as epoch seconds UTC)."""

    __slots__ = ("account_id", "event_id", "name", "properties", "ts", "type")

    def __init__(
        self,
        event_id: str,
        account_id: str,
        type: str,
        name: str,
        ts: float,
        properties: dict[str, Any] | None = None,
    ) -> None:
        self.event_id = event_id
        self.account_id = account_id
        self.type = type
        self.name = name
        self.ts = ts
        self.properties: dict[str, Any] = properties if properties is not None else {}

    def __repr__(self) -> str:
        return (
            f"CoreEvent({self.event_id!r}, {self.account_id!r}, {self.type!r}, "
            f"{self.name!r}, {self.ts!r}, {self.properties!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CoreEvent):
            return NotImplemented
        return (
            self.event_id == other.event_id
            and self.account_id == other.account_id
            and self.type == other.type
            and self.name == other.name
            and self.ts == other.ts
            and self.properties == other.properties
        )

    __hash__ = None  # type: ignore[assignment]


#: Event times the core can represent: years 1 to 9999 **in UTC** (``datetime``'s
#: range). ``9999-12-31T23:59:59-01:00`` is a valid RFC 3339 string whose UTC value
#: is in year 10000: accepted by the string rules, it crashed every later
#: formatting of the account's health.
MIN_EVENT_TS = (datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
MAX_EVENT_TS = 253402300800.0  # 10000-01-01T00:00:00Z, exclusive


def parse_timestamp(value: object) -> float:
    """RFC 3339 with a zone -> epoch seconds, by the contract's own rules (``schemas``).

    Off the hot path: ``parse_event`` reads the common ``...THH:MM:SSZ`` form itself.
    Raises ``ValueError`` for a time outside ``MIN_EVENT_TS``..``MAX_EVENT_TS``.
    """
    ts = (parse_rfc3339(value) - _EPOCH).total_seconds()
    if not MIN_EVENT_TS <= ts < MAX_EVENT_TS:
        raise ValueError("is outside the representable range (years 1 to 9999 in UTC)")
    return ts


_OCCURRED_AT = b'"occurred_at":"'


def event_time_of(raw: bytes | None) -> float:
    """The ``occurred_at`` of a raw event record, cheaply; ``-inf`` when unreadable.

    Used to merge the event topics by event time before the records are parsed
    (see ``services.scorer.alignment``). The compact form every healthstream
    producer writes is found with one byte search; anything else (whitespace,
    the key appearing twice, e.g. inside ``properties``) takes a full JSON parse.
    An unreadable record sorts first and is dead-lettered by the real parser.
    """
    if not raw:
        return _NO_TS
    at = raw.find(_OCCURRED_AT)
    if at >= 0 and raw.find(_OCCURRED_AT, at + 15) < 0:
        start = at + 15
        end = raw.find(b'"', start)
        if 0 < end - start <= 64 and raw.find(b"\\", start, end) < 0:
            try:
                return _timestamp(raw[start:end].decode("ascii"))
            except (ValueError, UnicodeDecodeError):
                return _NO_TS
    try:
        data = orjson.loads(raw)
        return _timestamp(data["occurred_at"]) if type(data) is dict else _NO_TS
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return _NO_TS


_NO_TS = float("-inf")


def format_timestamp(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC string (what ``schemas`` accept).

    Whole seconds (the common case) reuse a cached ``YYYY-MM-DDTHH:`` prefix per
    hour: every published health update and alert carries one of these.
    """
    if ts.is_integer() and 0 <= ts < _MAX_EPOCH:
        seconds = int(ts)
        hour, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{_hour_prefix(hour)}{minutes:02d}:{secs:02d}Z"
    return _format_slow(ts)


_MAX_EPOCH = MAX_EVENT_TS


@lru_cache(maxsize=1024)
def _hour_prefix(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:")


def _format_slow(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _identifier(data: Mapping[str, Any], field: str, max_length: int) -> str:
    if field not in data:
        raise InvalidEvent(field, "field required")
    value = data[field]
    if not isinstance(value, str):
        raise InvalidEvent(field, "must be a string")
    if not 1 <= len(value) <= max_length:
        raise InvalidEvent(field, f"must be 1 to {max_length} characters")
    problem = text_problem(value)
    if problem is not None:
        raise InvalidEvent(field, problem)
    return value


def _check_properties(name: str, props: dict[str, Any]) -> None:
    """The contract's well-known property rules, with the field named as the core names it."""
    try:
        check_properties(name, props)
    except PropertyError as exc:
        raise InvalidEvent(exc.field, exc.message) from None


@lru_cache(maxsize=4096)
def _hour_epoch(prefix: str) -> float:
    """Epoch seconds of ``YYYY-MM-DDTHH`` (UTC), validated by the full parser once.

    Events of a stream share their hour with many others, so the regex and
    ``datetime`` work is paid once per distinct hour, not once per event.
    """
    return parse_timestamp(prefix + ":00:00Z")


_SIXTY = {f"{i:02d}": i for i in range(60)}


def _timestamp(value: object) -> float:
    """``parse_timestamp`` with a fast path for the canonical ``YYYY-MM-DDTHH:MM:SSZ``.

    The fast path accepts a strict subset of what the full parser accepts (ASCII
    minutes and seconds 00-59, a ``Z`` zone) and yields the same value; anything
    else takes the full parser, so the accept/reject rules cannot drift.
    """
    if type(value) is str and len(value) == 20 and value[19] == "Z":
        minutes = _SIXTY.get(value[14:16])
        seconds = _SIXTY.get(value[17:19])
        if minutes is not None and seconds is not None and value[13] == ":" and value[16] == ":":
            return _hour_epoch(value[:13]) + (minutes * 60 + seconds)
    return parse_timestamp(value)


def _props_ok(props: dict[str, Any]) -> bool:
    """True when every well-known property is plainly valid (the common case).

    A strict subset of ``_check_properties``' rules, with no error messages; any
    doubt returns False and the caller runs the full check, which names the field.
    """
    for key, value in props.items():
        if value is None:
            continue
        if key in _STRING_PROP_SET:
            if type(value) is not str:
                return False
        elif key in _NUMBER_PROPS:
            kind = type(value)
            if not (kind is int or (kind is float and math.isfinite(value))):
                return False
        elif key in _COUNT_PROPS:
            if type(value) is not int or value < 0:
                return False
        elif key == PRIORITY_PROPERTY:
            if type(value) is not str or value not in _PRIORITIES:
                return False
        elif key in _FULL_CHECK_PROPS:
            return False  # rare on the hot path: the full check
    return True


def parse_event(raw: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> CoreEvent:
    """Validate one envelope and return a ``CoreEvent``; raise ``InvalidEvent`` naming the field.

    The hot path is written out inline (one ``orjson.loads``, C-level set and
    string checks): it runs for every record the scorer consumes. Every check
    that fails on the fast path falls back to the full check of that field, so
    errors and their order are those of the reference implementation.
    """
    data: Any
    if type(raw) is bytes or not isinstance(raw, Mapping):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("body", f"not valid JSON: {exc}") from None
        if type(data) is not dict:
            raise InvalidEvent("body", "must be a JSON object")
    else:
        data = raw
    if not data.keys() <= _FIELDS:
        for key in data:
            if key not in _FIELDS:
                raise InvalidEvent(str(key), "extra field not permitted")
    get = data.get
    event_id = get("event_id")
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= IDENTIFIER_MAX_LENGTH
        and event_id.isascii()
        and event_id.isprintable()
        and not event_id.isspace()
    ):
        event_id = _identifier(data, "event_id", IDENTIFIER_MAX_LENGTH)
    account_id = get("account_id")
    if not (
        type(account_id) is str
        and 0 < len(account_id) <= IDENTIFIER_MAX_LENGTH
        and account_id.isascii()
        and account_id.isprintable()
        and not account_id.isspace()
    ):
        account_id = _identifier(data, "account_id", IDENTIFIER_MAX_LENGTH)
    kind = get("type")
    if type(kind) is not str or kind not in _TYPES:
        if "type" not in data:
            raise InvalidEvent("type", "field required")
        raise InvalidEvent("type", TYPE_MESSAGE)
    name = get("name")
    if not (
        type(name) is str
        and 0 < len(name) <= NAME_MAX_LENGTH
        and name.isascii()
        and name.isprintable()
        and not name.isspace()
    ):
        name = _identifier(data, "name", NAME_MAX_LENGTH)
    if "occurred_at" not in data:
        raise InvalidEvent("occurred_at", "field required")
    try:
        ts = _timestamp(data["occurred_at"])
    except ValueError as exc:
        raise InvalidEvent("occurred_at", str(exc)) from None
    source = get("source")
    if source is not None and (not isinstance(source, str) or len(source) > SOURCE_MAX_LENGTH):
        raise InvalidEvent("source", f"must be a string of at most {SOURCE_MAX_LENGTH} characters")
    props = get("properties", _NO_PROPS)
    if props is _NO_PROPS:
        props = {}
    elif not isinstance(props, dict):
        raise InvalidEvent("properties", "must be an object")
    if name in SCORE_RANGES or (props and not _props_ok(props)):
        _check_properties(name, props)
    return CoreEvent(event_id, account_id, kind, name, ts, props)
