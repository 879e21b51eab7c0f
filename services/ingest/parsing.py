"""Turn an HTTP body into a list of raw items, enforcing every request limit on the way.

Limits are checked before work is done: the declared length before reading, the
bytes read while streaming, the decompressed size and the number of gzip members
while inflating (a 5 MB gzip bomb never becomes 5 GB in memory, and inflating runs
in a worker thread, never on the event loop), the nesting depth before parsing,
and the item count before validation.
"""

from __future__ import annotations

import json
import zlib
from itertools import accumulate
from typing import Any

import orjson
from anyio import to_thread
from starlette.requests import Request

from services.ingest.errors import ApiError, ItemError

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def require_media_type(request: Request, allowed: frozenset[str]) -> str:
    kind = media_type(request)
    if kind not in allowed:
        shown = kind or "(none)"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {shown} is not supported; use {' or '.join(sorted(allowed))}",
        )
    return kind


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")


def content_encoding(request: Request) -> str:
    """``gzip`` or ``identity``; anything else is refused before the body is read."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return "gzip"
    if encoding in ("identity", ""):
        return "identity"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Encoding {encoding} is not supported; use gzip or none",
    )


async def read_raw(request: Request, limit: int) -> bytes:
    """The body as sent (still compressed), streamed and refused past ``limit`` bytes.

    The declared length is checked before a byte is read; a chunked upload is cut
    off at the first chunk over the limit, so no more than ``limit`` is ever held.
    """
    content_encoding(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_body(
    request: Request, raw: bytes, limit: int, max_gzip_members: int = 64
) -> bytes:
    """Inflate ``raw`` per its Content-Encoding (to at most ``limit`` bytes).

    Inflating happens in a worker thread: a body of many small gzip members costs CPU
    per member, and on the event loop it would stall every other request.
    """
    if content_encoding(request) == "gzip":
        return await to_thread.run_sync(gunzip_bounded, raw, limit, max_gzip_members)
    return raw


async def read_body(request: Request, limit: int, max_gzip_members: int = 64) -> bytes:
    """Read the raw body (at most ``limit`` bytes), then gunzip it (to at most ``limit`` bytes)."""
    raw = await read_raw(request, limit)
    return await decode_body(request, raw, limit, max_gzip_members)


#: Input fed to the inflater at a time: what is left after a member ends is at most
#: this much, so a body of many members is inflated in linear time.
_INFLATE_CHUNK = 64 * 1024


def gunzip_bounded(data: bytes, limit: int, max_members: int = 64) -> bytes:
    """Inflate gzip (possibly several members) without ever holding more than ``limit`` bytes."""
    out: list[bytes] = []
    size = 0
    members = 0
    view = memoryview(data)
    position = 0
    try:
        while position < len(data):
            members += 1
            if members > max_members:
                raise ApiError(400, "bad_request", f"gzip body has more than {max_members} members")
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while not inflater.eof:
                if position >= len(data):
                    raise ApiError(400, "bad_request", "gzip body is truncated")
                chunk = view[position : position + _INFLATE_CHUNK]
                position += len(chunk)
                piece = inflater.decompress(chunk, limit - size + 1)
                size += len(piece)
                if size > limit or inflater.unconsumed_tail:
                    raise _too_large(limit)
                out.append(piece)
            position -= len(inflater.unused_data)
    except zlib.error as exc:
        raise ApiError(400, "bad_request", f"body is not valid gzip: {exc}") from None
    return b"".join(out)


_BRACKETS_ONLY = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKETS_AND_QUOTES = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = [0] * 256
for _open in b"[{":
    _STEP[_open] = 1
for _close in b"]}":
    _STEP[_close] = -1


def _deepest(brackets: bytes) -> int:
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def nesting_depth(data: bytes) -> int:
    """Deepest array/object nesting of a JSON text, read without parsing it.

    Brackets inside strings do not count: escaped backslashes and quotes are
    removed, then every other quote-delimited run is a string. Runs in C
    (replace, translate, split), so nothing recurses however deep the body is.
    """
    skeleton = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _BRACKETS_AND_QUOTES)
    return _deepest(b"".join(skeleton.split(b'"')[::2]))


def check_depth(data: bytes, limit: int, line: int | None = None) -> None:
    """Refuse JSON nested deeper than ``limit`` before a parser recurses into it.

    Two cheap upper bounds first (bracket count; depth counting brackets inside
    strings too), so an ordinary batch never pays for the exact count.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return
    if _deepest(data.translate(None, _BRACKETS_ONLY)) <= limit or nesting_depth(data) <= limit:
        return
    message = f"JSON is nested deeper than {limit} levels; refused before parsing"
    if line is None:
        raise ApiError(400, "json_too_deep", message)
    raise ApiError(400, "json_too_deep", f"line {line}: {message}", line=line)


def _syntax_error(exc: orjson.JSONDecodeError, line_offset: int = 0) -> ApiError:
    line = exc.lineno + line_offset
    return ApiError(
        400,
        "malformed_json",
        f"malformed JSON at line {line}, column {exc.colno}: {exc.msg}",
        line=line,
        column=exc.colno,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _surrogate_path(value: Any, path: list[str | int]) -> list[str | int] | None:
    """Path to the first string (or key) holding a lone surrogate, if any."""
    if isinstance(value, str):
        return path if any("\ud800" <= ch <= "\udfff" for ch in value) else None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _surrogate_path(item, [*path, i])
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate_path(key, [*path, key]) or _surrogate_path(item, [*path, key])
            if found is not None:
                return found
    return None


def _loads(data: bytes, index_of: Any, line_offset: int = 0) -> Any:
    """orjson, except for escaped lone surrogates (valid JSON syntax, invalid text).

    orjson refuses ``"\\ud800"`` as a syntax error; it is a *content* error, so the
    document is re-read with the standard library only to say, as a 422, which
    field holds it. ``index_of(document, path)`` maps the path to (index, loc).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in exc.msg:
            raise _syntax_error(exc, line_offset) from None
        try:
            document = json.loads(data, parse_constant=_reject_constant)
        except ValueError:
            raise _syntax_error(exc, line_offset) from None
        path = _surrogate_path(document, [])
        if path is None:
            return document
        index, loc = index_of(document, path)
        # The offending key itself may be in the path: show it escaped, not raw.
        loc = [
            p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p for p in loc
        ]
        raise ApiError(
            422,
            "validation_error",
            "1 item(s) are invalid; nothing from this request was published",
            errors=[
                ItemError(
                    index=index,
                    loc=loc,
                    msg="must not contain control characters or lone surrogates",
                )
            ],
        ) from None


def _batch_position(document: Any, path: list[str | int]) -> tuple[int | None, list[str | int]]:
    if isinstance(document, list) and path:
        return int(path[0]), path[1:]
    if isinstance(document, dict) and path[:1] == ["events"] and len(path) > 1:
        return int(path[1]), path[2:]
    return 0, path


def parse_json(body: bytes, max_depth: int = 64) -> Any:
    if not body.strip():
        raise ApiError(400, "malformed_json", "request body is empty", line=1, column=1)
    check_depth(body, max_depth)
    return _loads(body, _batch_position)


def parse_ndjson(body: bytes, max_depth: int = 64) -> list[Any]:
    """One JSON value per line; blank lines are skipped (a trailing newline is normal)."""
    lines = body.split(b"\n")
    if body.count(b"[") + body.count(b"{") > max_depth:
        for number, line in enumerate(lines):
            check_depth(line, max_depth, line=number + 1)
    items: list[Any] = []
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        index = len(items)
        items.append(_loads(line, lambda _, path, at=index: (at, path), line_offset=number))
    return items


def batch_items(document: Any) -> list[Any]:
    """Accept one event object, a JSON array of events, or ``{"events": [...]}``."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if "events" not in document:
            return [document]
        events = document["events"]
        extra = sorted(set(document) - {"events"})
        if extra or not isinstance(events, list):
            loc: list[str | int] = [extra[0]] if extra else ["events"]
            msg = (
                "no other keys are allowed next to events"
                if extra
                else "events must be an array of event objects"
            )
            raise ApiError(
                422,
                "validation_error",
                "the batch envelope is invalid",
                errors=[ItemError(index=None, loc=loc, msg=msg)],
            )
        return events
    raise ApiError(
        422,
        "validation_error",
        'the body must be an event object, an array of events, or {"events": [...]}',
        errors=[ItemError(index=None, loc=[], msg="must be an object or an array")],
    )


def check_batch_size(items: list[Any], limit: int) -> None:
    if len(items) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"batch has {len(items)} events; at most {limit} are allowed per request",
        )
