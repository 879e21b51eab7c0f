"""Dead-letter records, one format for every service: the original bytes, the error in headers.

Why headers and not a JSON wrapper: the value stays byte-for-byte what the
producer sent (even when it is not JSON, or not UTF-8), so an operator can fix
and re-publish it to the source topic as is. The headers say why it failed.

A record of topic ``t`` goes to ``t.dlq`` (``healthstream.contract.DLQ_SUFFIX``)
with the source record's key and these headers (UTF-8 text):

``error``
    ``<exception type>: <message>``, at most ``MAX_ERROR_CHARS`` characters.
``error_stage``
    Where it failed (``STAGES``): ``decode`` (not JSON), ``schema`` (not a valid
    message), ``processing`` (the scorer's engine raised), ``late`` / ``future``
    (event time out of the scorer's bounds), ``store`` (the alerts database
    refused it), ``publish`` (ingest: the broker refused the event).
``error_field``
    The field the validator named, when it named one.
``source_topic``
    The topic the record was read from, or (``publish``) meant for.
``source_partition``, ``source_offset``
    Where it was read; absent for ``publish``, which never reached its topic.
``original_size``
    Present only when the value was cut so the dead letter fits the broker: the
    size in bytes of the whole value, of which the dead letter holds the start.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_ERROR_CHARS = 1000
STAGES = ("decode", "schema", "processing", "late", "future", "store", "publish")

ERROR = "error"
STAGE = "error_stage"
FIELD = "error_field"
SOURCE_TOPIC = "source_topic"
SOURCE_PARTITION = "source_partition"
SOURCE_OFFSET = "source_offset"
ORIGINAL_SIZE = "original_size"

Headers = list[tuple[str, bytes]]


def dead_letter_headers(
    source_topic: str,
    stage: str,
    exc: BaseException,
    *,
    partition: int | None = None,
    offset: int | None = None,
    field_name: str | None = None,
    original_size: int | None = None,
) -> Headers:
    """The headers of one dead letter (see the module docstring for each one)."""
    if stage not in STAGES:
        raise ValueError(f"unknown dead-letter stage {stage!r} (known: {', '.join(STAGES)})")
    message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    headers: Headers = [
        (ERROR, message.encode("utf-8", "replace")),
        (STAGE, stage.encode()),
        (SOURCE_TOPIC, source_topic.encode()),
    ]
    if partition is not None:
        headers.append((SOURCE_PARTITION, str(partition).encode()))
    if offset is not None:
        headers.append((SOURCE_OFFSET, str(offset).encode()))
    if field_name:
        headers.append((FIELD, field_name.encode("utf-8", "replace")))
    if original_size is not None:
        headers.append((ORIGINAL_SIZE, str(original_size).encode()))
    return headers


def read_headers(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    """Decode dead-letter headers into a dict (for tools and tests)."""
    return {key: value.decode("utf-8", "replace") for key, value in headers or ()}
