"""Constrained string and timestamp types shared by every contract."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

# C0/C1 control characters and lone surrogates have no business in an identifier
# and break downstream consumers (terminals, CSV exports, Postgres text columns).
FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# RFC 3339: date 'T' time, optional fraction, mandatory zone (Z or ±hh:mm).
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


#: What JSON Schema can say of the same rule (no lone surrogates there): at least one
#: character that is neither white space nor a control character.
TEXT_PATTERN = (
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f]"
    "[^\\u0000-\\u001f\\u007f-\\u009f]*$"
)


def _no_control_chars(value: str) -> str:
    if FORBIDDEN_CHARACTERS.search(value):
        raise ValueError("must not contain control characters or lone surrogates")
    if not value.strip():
        # An id of spaces looks like a value and is none: it dedupes, keys and
        # routes as an accident would.
        raise ValueError("must not be blank (white space only)")
    return value


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
    # Python < 3.11 only accepts 6 fraction digits; trim nanoseconds.
    match = re.search(r"\.(\d+)", text)
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


_DOCUMENTED = {"pattern": TEXT_PATTERN}
Identifier = Annotated[
    str,
    Field(min_length=1, max_length=256, json_schema_extra=_DOCUMENTED),
    AfterValidator(_no_control_chars),
]
EventName = Annotated[
    str,
    Field(min_length=1, max_length=128, json_schema_extra=_DOCUMENTED),
    AfterValidator(_no_control_chars),
]
Timestamp = Annotated[datetime, BeforeValidator(parse_rfc3339)]
