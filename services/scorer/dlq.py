"""Dead-letter records: the original bytes untouched, the error in Kafka headers.

Why headers and not a JSON wrapper: the value stays byte-for-byte what the
producer sent (even when it is not JSON, or not UTF-8), so an operator can fix
and re-publish it to the source topic as is. The headers say why it failed.

Headers: ``error`` (message), ``error_stage`` (decode | schema | processing |
late | future),
``error_field`` (the envelope field named by the validator, when known),
``source_topic``, ``source_partition``, ``source_offset``.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_ERROR_CHARS = 1000


def dlq_headers(
    topic: str,
    partition: int,
    offset: int,
    stage: str,
    exc: BaseException,
    field_name: str | None,
) -> list[tuple[str, bytes]]:
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    headers = [
        ("error", message.encode("utf-8", "replace")),
        ("error_stage", stage.encode()),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]
    if field_name:
        headers.append(("error_field", field_name.encode("utf-8", "replace")))
    return headers


def read_headers(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Decode DLQ headers into a dict (for tools and tests)."""
    return {key: value.decode("utf-8", "replace") for key, value in headers or ()}
