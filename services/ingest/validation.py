"""Validate raw items against the canonical contract, :class:`schemas.Event`.

The contract decides what is valid; this module only shapes its verdict into one
error per bad item, with ``loc`` pointing at the field. The contract reports the
cross-field checks of well-known properties (``properties.amount``, score ranges
that depend on ``name``) at model level; they are re-located here to
``["properties", "<key>"]`` so a producer sees exactly which property is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas import Event
from services.ingest.errors import ItemError

_PROPERTY_MESSAGE = re.compile(r"^properties\.([A-Za-z0-9_]+) ")


@dataclass(frozen=True)
class Validated:
    events: list[Event]
    errors: list[ItemError]


def _first_error(index: int, exc: ValidationError) -> ItemError:
    error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    loc: list[str | int] = list(error.get("loc", ()))
    msg = str(error.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:
        match = _PROPERTY_MESSAGE.match(msg)
        if match:
            loc = ["properties", match.group(1)]
    return ItemError(index=index, loc=loc, msg=msg)


def validate_items(items: list[Any], default_source: str) -> Validated:
    """Validate every item (not just until the first failure) so one 422 lists them all.

    Items without a ``source`` get ``default_source``, so every published event says
    where it came from.
    """
    events: list[Event] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(ItemError(index=index, loc=[], msg="each event must be a JSON object"))
            continue
        if item.get("source") is None:
            item = {**item, "source": default_source}
        try:
            events.append(Event.model_validate(item))
        except ValidationError as exc:
            errors.append(_first_error(index, exc))
    return Validated(events=events, errors=errors)
