"""What every adapter returns, and small helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.ingest.errors import ItemError


@dataclass
class Conversion:
    """Canonical event dicts (not yet validated), each with the vendor message it came from."""

    items: list[dict[str, Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    ignored: int = 0

    def add(self, origin: int, item: dict[str, Any]) -> None:
        self.items.append(item)
        self.origins.append(origin)

    def fail(self, origin: int | None, loc: list[str | int], msg: str) -> None:
        self.errors.append(ItemError(index=origin, loc=loc, msg=msg))


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...`` or None when any step is missing or not an object."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def epoch_to_rfc3339(value: Any) -> str | None:
    """Vendor epoch seconds (Stripe's ``created``) to an RFC 3339 UTC string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat().replace("+00:00", "Z")


def as_text(value: Any) -> str | None:
    """Vendor ids arrive as numbers or strings; the contract wants strings."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        text = str(value)
        return text or None
    return None


def compact(props: dict[str, Any]) -> dict[str, Any]:
    """Drop absent values so a missing vendor field is absent, not null."""
    return {k: v for k, v in props.items() if v is not None}
