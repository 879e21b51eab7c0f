"""A small Python client for the ingest API, and ``healthstream send FILE.ndjson``.

Why a client at all: the API answers 503 + Retry-After under backpressure and
when the broker is away, and a producer that does not retry loses data. The
client batches, gzips, retries 503/429 (and connection errors) with capped
exponential backoff and jitter, honouring ``Retry-After``. Retrying a batch is
safe: events the broker already took come back as ``duplicates``.

    async with IngestClient("http://ingest:8080", api_key) as client:
        report = await client.send(events)          # iterable of dicts
        report = await client.send_file("events.ndjson")
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson
import tenacity
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthstream import retry

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class IngestError(Exception):
    """The API refused a batch for a reason a retry cannot fix (4xx), or retries ran out."""

    def __init__(self, status: int, body: Any, first_line: int | None = None) -> None:
        self.status = status
        self.body = body
        self.first_line = first_line
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")

    def item_errors(self) -> list[dict[str, Any]]:
        """The 422 per-item errors, with ``line`` (1-based file line) when sent from a file."""
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        return list(errors or [])


class _Retryable(Exception):
    """An answer worth another try (503/429/5xx gateway, connection error)."""

    def __init__(self, status: int, answer: Any, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.answer = answer
        self.retry_after = retry_after


@dataclass
class SendReport:
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    events: int = 0

    def add(self, answer: dict[str, Any], size: int) -> None:
        self.accepted += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        self.dead_lettered += int(answer.get("dead_lettered", 0))
        self.batches += 1
        self.events += size


@dataclass
class _Batch:
    lines: list[bytes]
    line_numbers: list[int] = field(default_factory=list)


class IngestClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        batch_size: int = 1000,
        compress: bool = True,
        concurrency: int = 1,
        max_retries: int = 8,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        timeout_seconds: float = 60.0,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.batch_size = batch_size
        self.compress = compress
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._timeout = timeout_seconds
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # the key stays out of reprs and logs
        return f"IngestClient({self.base_url!r}, api_key='***')"

    async def __aenter__(self) -> IngestClient:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self._timeout,
            headers={"Authorization": f"Bearer {self._api_key}"},
            limits=httpx.Limits(max_connections=self.concurrency + 2),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _wait(self, rs: tenacity.RetryCallState) -> float:
        """The project's backoff, but never sooner than the server's ``Retry-After``."""
        backoff = retry.delay(rs.attempt_number, self.backoff_seconds, self.max_backoff_seconds)
        exc = rs.outcome.exception() if rs.outcome is not None else None
        retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
        if retry_after and retry_after.isdigit():
            return max(float(retry_after), backoff)
        return backoff

    async def send_lines(
        self, lines: Sequence[bytes], first_line: int | None = None
    ) -> tuple[dict[str, Any], int]:
        """POST one NDJSON batch (already-serialised events); returns (answer, retries)."""
        if self._http is None:
            raise RuntimeError("use 'async with IngestClient(...)'")
        body = b"\n".join(lines) + b"\n"
        headers = {"Content-Type": "application/x-ndjson"}
        if self.compress:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(_Retryable),
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    answer = await self._post(body, headers, first_line)
                    return answer, attempt.retry_state.attempt_number - 1
        except _Retryable as exc:
            raise IngestError(exc.status, exc.answer, first_line) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _post(
        self, body: bytes, headers: dict[str, str], first_line: int | None
    ) -> dict[str, Any]:
        assert self._http is not None
        try:
            response = await self._http.post("/v1/events", content=body, headers=headers)
        except httpx.TransportError as exc:
            raise _Retryable(0, {"message": f"{type(exc).__name__}: {exc}"}, None) from None
        status = response.status_code
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:
            answer = {"message": response.text[:500]}
        if status < 300:
            return answer
        if status in RETRY_STATUSES:
            raise _Retryable(status, answer, response.headers.get("Retry-After"))
        raise IngestError(status, answer, first_line)

    async def send_batch(self, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
        answer, _ = await self.send_lines([orjson.dumps(e) for e in events])
        return answer

    async def _run(
        self, batches: Iterable[_Batch], on_batch: Callable[[int], None] | None
    ) -> SendReport:
        report = SendReport()
        queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        failure: list[BaseException] = []

        async def worker() -> None:
            while (batch := await queue.get()) is not None:
                if failure:
                    continue
                first = batch.line_numbers[0] if batch.line_numbers else None
                try:
                    answer, retries = await self.send_lines(batch.lines, first)
                except BaseException as exc:
                    failure.append(_with_lines(exc, batch))
                    continue
                report.add(answer, len(batch.lines))
                report.retries += retries
                if on_batch is not None:
                    on_batch(len(batch.lines))

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        try:
            for batch in batches:
                if failure:
                    break
                await queue.put(batch)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        if failure:
            raise failure[0]
        return report

    async def send(
        self, events: Iterable[dict[str, Any]], on_batch: Callable[[int], None] | None = None
    ) -> SendReport:
        """Send events in batches; raises :class:`IngestError` on the first refused batch."""
        return await self._run(self._batches_of(orjson.dumps(e) for e in events), on_batch)

    async def send_file(
        self, path: str | Path, on_batch: Callable[[int], None] | None = None
    ) -> SendReport:
        """Send an NDJSON file line by line (lines are sent as they are, not re-serialised)."""
        return await self._run(_file_batches(Path(path), self.batch_size), on_batch)

    def _batches_of(self, lines: Iterable[bytes]) -> Iterator[_Batch]:
        batch = _Batch([])
        for line in lines:
            batch.lines.append(line)
            if len(batch.lines) >= self.batch_size:
                yield batch
                batch = _Batch([])
        if batch.lines:
            yield batch


def _with_lines(exc: BaseException, batch: _Batch) -> BaseException:
    """Translate 422 item indexes into file line numbers, so the user can fix the file."""
    if isinstance(exc, IngestError) and batch.line_numbers:
        for error in exc.item_errors():
            index = error.get("index")
            if isinstance(index, int) and 0 <= index < len(batch.line_numbers):
                error["line"] = batch.line_numbers[index]
    return exc


def _file_batches(path: Path, batch_size: int) -> Iterator[_Batch]:
    batch = _Batch([])
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            batch.lines.append(line)
            batch.line_numbers.append(number)
            if len(batch.lines) >= batch_size:
                yield batch
                batch = _Batch([])
    if batch.lines:
        yield batch


# --- healthstream send ---------------------------------------------------------

#: Warn when more than this share of a file was dropped as already seen.
DUPLICATE_WARNING_SHARE = 0.1


class ClientSettings(BaseSettings):
    """``HEALTHSTREAM_INGEST_URL`` and ``HEALTHSTREAM_API_KEY`` (or .env)."""

    model_config = SettingsConfigDict(env_prefix="HEALTHSTREAM_", env_file=".env", extra="ignore")

    ingest_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="NDJSON file, one event per line")
    parser.add_argument(
        "--url",
        help="ingest base URL (default: HEALTHSTREAM_INGEST_URL, else the demo running "
        "from this directory, else http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--api-key",
        help="API key with the ingest scope (default: HEALTHSTREAM_API_KEY, else the "
        "running demo's key)",
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="events per request")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests in flight (more is faster; 1 keeps the file's order)",
    )
    parser.add_argument("--no-gzip", action="store_true", help="send uncompressed bodies")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (off anyway when not a TTY)"
    )


async def _send_with_progress(client: IngestClient, path: Path, show: bool) -> SendReport:
    from tqdm import tqdm

    total = sum(1 for line in path.open("rb") if line.strip())
    # disable=None: tqdm draws only on a terminal, so redirected output stays clean.
    disable = None if show else True
    with tqdm(total=total, unit="ev", disable=disable, file=sys.stderr, mininterval=0.5) as bar:
        async with client:
            return await client.send_file(path, on_batch=bar.update)


def _target(args: argparse.Namespace, settings: ClientSettings) -> tuple[str, str, str | None]:
    """(ingest URL, API key, where they came from if from the running demo)."""
    from healthstream import running_demo

    url = args.url or (settings.ingest_url if "ingest_url" in settings.model_fields_set else "")
    key = args.api_key or (settings.api_key.get_secret_value() if settings.api_key else "")
    origin = None
    if not url or not key:
        demo, path = running_demo.find()
        if demo is not None:
            origin = f"the running demo ({path})"
            url, key = url or demo.ingest_url, key or demo.api_key
    return url or settings.ingest_url, key, origin


def _unreachable(url: str) -> str | None:
    """Why ``url`` cannot be reached at all, or None: retries cannot fix a wrong address."""
    try:
        httpx.get(f"{url.rstrip('/')}/healthz", timeout=5.0)
    except httpx.TransportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def run(args: argparse.Namespace) -> int:
    settings = ClientSettings()
    url, key, origin = _target(args, settings)
    if not key:
        print(
            "send: no API key: pass --api-key, set HEALTHSTREAM_API_KEY, or start "
            "`healthstream demo` in this directory",
            file=sys.stderr,
        )
        return 2
    if not args.file.is_file():
        print(f"send: {args.file}: no such file", file=sys.stderr)
        return 2
    problem = _unreachable(url)
    if problem is not None:
        print(
            f"send: cannot reach ingest at {url} ({problem}): is it running? "
            "Pass --url or set HEALTHSTREAM_INGEST_URL",
            file=sys.stderr,
        )
        return 1
    if origin is not None:
        print(f"send: sending to {url}, {origin}", file=sys.stderr)
    client = IngestClient(
        url,
        key,
        batch_size=args.batch_size,
        compress=not args.no_gzip,
        concurrency=args.concurrency,
    )
    try:
        report = asyncio.run(_send_with_progress(client, args.file, not args.no_progress))
    except IngestError as exc:
        print(f"send: refused: {exc}", file=sys.stderr)
        for error in exc.item_errors()[:20]:
            where = f"line {error['line']}" if "line" in error else f"item {error.get('index')}"
            loc = ".".join(str(p) for p in error.get("loc", [])) or "(event)"
            print(f"  {where}: {loc}: {error.get('msg')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("send: interrupted; sending the file again is safe (duplicates)", file=sys.stderr)
        return 130
    print(
        f"sent {report.events} events in {report.batches} requests: "
        f"{report.accepted} accepted, {report.duplicates} duplicates, "
        f"{report.dead_lettered} dead-lettered, {report.retries} retries"
    )
    if report.events and report.duplicates > DUPLICATE_WARNING_SHARE * report.events:
        print(
            f"send: warning: {report.duplicates} of {report.events} events "
            f"({report.duplicates / report.events:.0%}) were dropped as duplicates: ingest had "
            "already seen their event_id (the same file sent twice, or two files sharing ids)",
            file=sys.stderr,
        )
    return 0
