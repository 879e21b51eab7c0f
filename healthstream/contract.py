"""The event contract, declared once as plain data: types, topics, fields, property rules.

Why plain data: three readers need the same rules and cannot share code. The
pydantic models (``schemas``) build their validators and their exported JSON
Schema from these tables; the scorer's fast parser (``services.scorer.core.events``,
compiled with mypyc, no pydantic, no I/O) builds its lookup tables from them;
the settings derive the topic names from them. Nothing here imports pydantic or
does I/O, and every value is a plain ``str``/``int``/``tuple``/``dict``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Final

# -- event types and topics ---------------------------------------------------------

#: The five event types, in the order the scorer's state indexes them.
EVENT_TYPES: Final[tuple[str, ...]] = ("usage", "ticket", "billing", "feedback", "account")
#: An event of type ``t`` is written to the topic ``t + EVENT_TOPIC_SUFFIX``.
EVENT_TOPIC_SUFFIX: Final = "-events"
#: The topics the scorer writes and the alerts service and trainer read.
ACCOUNT_HEALTH_TOPIC: Final = "account-health"
RISK_ALERTS_TOPIC: Final = "risk-alerts"
TRAINING_EXAMPLES_TOPIC: Final = "training-examples"
MODEL_SNAPSHOTS_TOPIC: Final = "model-snapshots"
#: Topic ``t``'s dead letters go to ``t + DLQ_SUFFIX`` (record format: ``healthstream.deadletter``).
DLQ_SUFFIX: Final = ".dlq"


def event_topic(event_type: str) -> str:
    """The topic (without the deployment's prefix) that carries events of ``event_type``."""
    return f"{event_type}{EVENT_TOPIC_SUFFIX}"


# -- the envelope -------------------------------------------------------------------

#: Every field an envelope may carry; any other is refused.
EVENT_FIELDS: Final[tuple[str, ...]] = (
    "event_id",
    "account_id",
    "type",
    "name",
    "occurred_at",
    "source",
    "properties",
)
IDENTIFIER_MAX_LENGTH: Final = 256
NAME_MAX_LENGTH: Final = 128
SOURCE_MAX_LENGTH: Final = 64
TYPE_MESSAGE: Final = "must be one of " + ", ".join(EVENT_TYPES)

#: C0/C1 control characters and lone surrogates have no business in an identifier
#: and break downstream consumers (terminals, CSV exports, Postgres text columns).
FORBIDDEN_CHARACTERS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

#: What JSON Schema can say of the same rule (no lone surrogates there): at least one
#: character that is neither white space nor a control character.
TEXT_PATTERN: Final = (
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f]"
    "[^\\u0000-\\u001f\\u007f-\\u009f]*$"
)


def text_problem(value: str) -> str | None:
    """Why ``value`` is no identifier (control characters, blank), or None when it is one."""
    if FORBIDDEN_CHARACTERS.search(value):
        return "must not contain control characters or lone surrogates"
    if not value.strip():
        # An id of spaces looks like a value and is none: it dedupes, keys and
        # routes as an accident would.
        return "must not be blank (white space only)"
    return None


# RFC 3339: date 'T' time, optional fraction, mandatory zone (Z or ±hh:mm).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_FRACTION = re.compile(r"\.(\d+)")


def parse_rfc3339(value: object) -> datetime:
    """Accept only an RFC 3339 string with an explicit zone.

    Numbers (epoch seconds or millis are ambiguous), naive timestamps (whose
    zone would be guessed) and impossible dates are rejected, because every
    window in the scorer depends on event time being exact.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a time zone")
        return _representable(value)
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string with a time zone, e.g. 2024-05-01T12:00:00Z")
    if not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 timestamp with a time zone, e.g. 2024-05-01T12:00:00Z"
        )
    text = value
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    # datetime keeps microseconds: trim nanoseconds.
    match = _FRACTION.search(text)
    if match and len(match.group(1)) > 6:
        text = text[: match.start(1) + 6] + text[match.end(1) :]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"is not a valid date or time: {exc}") from None
    return _representable(moment)


def _representable(moment: datetime) -> datetime:
    """Refuse a moment outside years 1-9999 *in UTC*, even when its local form is valid.

    Every component holds event time in UTC at some point (the scorer's epoch
    seconds, the alerts store, RFC 3339 output), so ``9999-12-31T23:59:59-01:00``
    (year 10000 in UTC) or ``0001-01-01T00:00:00+01:00`` (year 0) would break them.
    """
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "is outside the representable range: in UTC it must be between "
            "0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
        ) from None
    return moment


# -- well-known properties ----------------------------------------------------------
# ``properties`` is free-form; these keys are typed. ``null`` counts as absent for
# every one of them except a survey's ``score``, which its name requires.

#: Finite numbers (JSON has no infinity; an integer beyond the float range is refused).
NUMBER_PROPERTIES: Final[tuple[str, ...]] = ("amount", "mrr")
#: Non-negative integers; an integral float (3.0, an integer to JSON Schema) becomes an int.
COUNT_PROPERTIES: Final[tuple[str, ...]] = ("quantity",)
#: Strings.
STRING_PROPERTIES: Final[tuple[str, ...]] = ("user_id", "feature", "status", "plan", "csm")
#: A 3-letter ISO 4217 code (ASCII letters).
CURRENCY_PROPERTY: Final = "currency"
#: One of ``PRIORITIES``.
PRIORITY_PROPERTY: Final = "priority"
PRIORITIES: Final[tuple[str, ...]] = ("low", "normal", "high", "urgent")
#: The event names whose ``properties.score`` is a required whole number in a fixed range.
SCORE_PROPERTY: Final = "score"
SCORE_RANGES: Final[dict[str, tuple[int, int]]] = {
    "nps.response": (0, 10),
    "csat.response": (1, 5),
}
#: The largest finite float: a JSON number beyond it has no finite value.
FLOAT_MAX: Final = 1.7976931348623157e308

#: The error message of each well-known property (the field is ``properties.<key>``).
NUMBER_MESSAGE: Final = "must be a number"
FINITE_MESSAGE: Final = "must be a finite number"
COUNT_MESSAGE: Final = "must be a non-negative integer"
STRING_MESSAGE: Final = "must be a string"
CURRENCY_MESSAGE: Final = "must be a 3-letter ISO 4217 code"
PRIORITY_MESSAGE: Final = "must be one of " + ", ".join(PRIORITIES)


def score_message(low: int, high: int) -> str:
    return f"must be an integer from {low} to {high}"


def properties_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``properties``: the well-known keys' rules, other keys free."""
    nullable: dict[str, dict[str, Any]] = {}
    for key in NUMBER_PROPERTIES:
        nullable[key] = {"type": "number", "minimum": -FLOAT_MAX, "maximum": FLOAT_MAX}
    for key in COUNT_PROPERTIES:
        nullable[key] = {"type": "integer", "minimum": 0}
    nullable[CURRENCY_PROPERTY] = {"type": "string", "pattern": "^[A-Za-z]{3}$"}
    nullable[PRIORITY_PROPERTY] = {"enum": list(PRIORITIES)}
    for key in STRING_PROPERTIES:
        nullable[key] = {"type": "string"}
    return {
        "type": "object",
        "additionalProperties": True,
        "properties": {
            key: {"anyOf": [schema, {"type": "null"}]} for key, schema in nullable.items()
        },
    }


def score_rules_json_schema() -> list[dict[str, Any]]:
    """Event-level rules: a survey's ``properties.score`` is required and range-bound."""
    return [
        {
            "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
            "then": {
                "properties": {
                    "properties": {
                        "properties": {
                            SCORE_PROPERTY: {"type": "integer", "minimum": low, "maximum": high}
                        },
                        "required": [SCORE_PROPERTY],
                    }
                },
                "required": ["properties"],
            },
        }
        for name, (low, high) in SCORE_RANGES.items()
    ]


class PropertyError(ValueError):
    """A well-known property broke its rule; ``field`` is ``properties.<key>``."""

    def __init__(self, key: str, message: str) -> None:
        self.field = f"properties.{key}"
        self.message = message
        super().__init__(f"{self.field} {message}")


def _finite_number(key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PropertyError(key, NUMBER_MESSAGE)
    try:
        number = float(value)  # an int beyond 1e308 overflows here rather than in isfinite
    except OverflowError:
        raise PropertyError(key, FINITE_MESSAGE) from None
    if not math.isfinite(number):
        raise PropertyError(key, FINITE_MESSAGE)


def check_properties(name: str, props: dict[str, Any]) -> None:
    """Apply the well-known property rules to an event's ``properties``, in place.

    Raises :class:`PropertyError` for the first broken rule, in a fixed order
    (numbers, counts, currency, priority, survey score, strings). Integral floats
    of a count or a score are replaced by ints, so every consumer sees an int.
    """
    for key in NUMBER_PROPERTIES:
        if props.get(key) is not None:
            _finite_number(key, props[key])
    for key in COUNT_PROPERTIES:
        count = props.get(key)
        if count is None:
            continue
        if isinstance(count, float) and count.is_integer():
            count = props[key] = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PropertyError(key, COUNT_MESSAGE)
    currency = props.get(CURRENCY_PROPERTY)
    if currency is not None and not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
    ):
        raise PropertyError(CURRENCY_PROPERTY, CURRENCY_MESSAGE)
    priority = props.get(PRIORITY_PROPERTY)
    if priority is not None and (not isinstance(priority, str) or priority not in PRIORITIES):
        raise PropertyError(PRIORITY_PROPERTY, PRIORITY_MESSAGE)
    bounds = SCORE_RANGES.get(name)
    if bounds is not None:
        low, high = bounds
        score = props.get(SCORE_PROPERTY)
        if isinstance(score, float) and score.is_integer():
            score = props[SCORE_PROPERTY] = int(score)
        if isinstance(score, bool) or not isinstance(score, int) or not low <= score <= high:
            raise PropertyError(SCORE_PROPERTY, score_message(low, high))
    for key in STRING_PROPERTIES:
        value = props.get(key)
        if value is not None and not isinstance(value, str):
            raise PropertyError(key, STRING_MESSAGE)
