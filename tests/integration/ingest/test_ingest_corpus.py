"""The committed hostile-input corpus against one live ingest server.

``corpus/hostile.jsonl`` holds one case per line: a path, a body (``json``,
``text``, ``hex`` bytes, a ``repeat`` recipe for the big ones, or a ``surrogate``
to splice into an event), optional content type, encoding, authentication and
Stripe signature, and the answer expected: a 4xx status, the ``error`` code and
strings that must appear in the error body (the field or the problem named).

Every case must get exactly that, as JSON, never a 5xx; after the whole corpus
the server still serves, a valid event is still accepted and published, and no
API key or secret appears in any error body or log record.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from healthstream.settings import Settings
from services.ingest.adapters.signatures import stripe_signature
from tests.integration.ingest.live import (
    ADMIN_KEY,
    INGEST_KEY,
    READ_ONLY_KEY,
    STRIPE_SECRET,
    LiveServer,
    event,
    read_topic,
    values,
)

CORPUS = Path(__file__).parent / "corpus" / "hostile.jsonl"
CASES: list[dict[str, Any]] = [json.loads(line) for line in CORPUS.read_text().splitlines()]
WRONG_KEY = "wrong-key-5ecret-d0-not-echo"
SECRETS = (INGEST_KEY, ADMIN_KEY, READ_ONLY_KEY, STRIPE_SECRET, WRONG_KEY)


class Recorder(logging.Handler):
    """Every log record of the module, with its extras, for the secret check."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The test's own HTTP client logs the URLs it requests: not the service's logs.
        if not record.name.startswith(("httpx", "httpcore")):
            self.records.append(record)

    def text(self) -> str:
        return "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in self.records)


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.fixture(scope="module")
def client(recorder: Recorder, module_ingest_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=module_ingest_server.url, timeout=60) as http:
        yield http


def encode_json(value: Any) -> bytes:
    # surrogatepass: a lone surrogate in a case must reach the server as sent.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def body_of(case: dict[str, Any]) -> bytes:
    if "json" in case:
        return encode_json(case["json"])
    if "text" in case:
        return str(case["text"]).encode("utf-8", "surrogatepass")
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    if "repeat" in case:
        r = case["repeat"]
        times = r["times"]
        text = r.get("prefix", "") + r["unit"] * times + r.get("middle", "")
        return (text + r.get("suffix_unit", "") * times + r.get("suffix", "")).encode()
    spec = case["surrogate"]
    document = json.loads(json.dumps(spec["event"]))
    target = document
    for key in spec["field"][:-1]:
        target = target[key]
    target[spec["field"][-1]] = "__SURROGATE__"
    return encode_json(document).replace(b'"__SURROGATE__"', f'"{spec["escape"]}"'.encode())


def request_of(case: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    path = case["path"]
    plain = body_of(case)
    headers: dict[str, str] = {}
    content_type = case.get("content_type", "application/json")
    if content_type:
        headers["Content-Type"] = content_type
    body = plain
    if case.get("encoding") == "gzip":
        headers["Content-Encoding"] = "gzip"
        if case.get("raw_encoding"):
            body = plain
        elif "members" in case:
            body = gzip.compress(plain) + gzip.compress(b"") * (case["members"] - 1)
        elif "truncate" in case:
            body = gzip.compress(plain)[: -case["truncate"]]
        else:
            body = gzip.compress(plain)
    if "content_encoding" in case:
        headers["Content-Encoding"] = case["content_encoding"]
    auth = case.get("auth", "none" if path.endswith("/stripe") else "ingest")
    if auth == "ingest":
        headers["Authorization"] = f"Bearer {INGEST_KEY}"
    elif auth == "wrong":
        headers["Authorization"] = f"Bearer {WRONG_KEY}"
    elif auth == "read":
        headers["Authorization"] = f"Bearer {READ_ONLY_KEY}"
    elif auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"x:{INGEST_KEY}".encode()).decode()
    elif auth == "query":
        path += f"?api_key={INGEST_KEY}"
    sign = case.get("sign")
    now = int(time.time())
    # Stripe signs the body as sent (compressed, when it is).
    if sign is True:
        headers["Stripe-Signature"] = stripe_signature(STRIPE_SECRET, body, now)
    elif sign == "forged":
        headers["Stripe-Signature"] = stripe_signature("whsec_forged", body, now)
    elif sign == "stale":
        headers["Stripe-Signature"] = stripe_signature(STRIPE_SECRET, body, now - 3600)
    elif sign == "garbage":
        headers["Stripe-Signature"] = "nonsense"
    return path, body, headers


def test_corpus_is_large_and_covers_every_endpoint() -> None:
    assert len({c["id"] for c in CASES}) == len(CASES)
    assert len(CASES) >= 150
    per_path = {p: sum(c["path"] == p for c in CASES) for p in {c["path"] for c in CASES}}
    assert set(per_path) == {
        "/v1/events",
        "/v1/sources/segment",
        "/v1/sources/zendesk",
        "/v1/sources/stripe",
    }
    assert min(per_path.values()) >= 15, per_path
    assert all(400 <= c["status"] < 500 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_hostile_case_gets_its_4xx_naming_the_problem(
    client: httpx.Client, case: dict[str, Any]
) -> None:
    path, body, headers = request_of(case)
    response = client.post(path, content=body, headers=headers)
    assert response.status_code == case["status"], response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert isinstance(answer["error"], str) and isinstance(answer["message"], str)
    if "error" in case:
        assert answer["error"] == case["error"], answer
    shown = json.dumps(answer, ensure_ascii=False)
    for needle in case.get("names", []):
        assert needle in shown, (needle, answer)
    for secret in SECRETS:
        assert secret not in response.text
    # The error never echoes a large input back.
    assert len(response.content) < 16 * 1024


async def test_after_the_corpus_the_service_serves_and_leaks_nothing(
    client: httpx.Client, module_ingest_server: LiveServer, recorder: Recorder
) -> None:
    assert client.get("/healthz").status_code == 200
    settings: Settings = module_ingest_server.settings
    valid = event(0)
    # Injection-style text is data: accepted and published verbatim, not interpreted.
    verbatim = event(1, account_id="<script>alert(1)</script>'; DROP TABLE alerts;--")
    verbatim["properties"] = {"feature": "<!channel> <https://evil.example|log in>", "x": "{{7*7}}"}
    response = client.post(
        "/v1/events",
        content=orjson.dumps([valid, verbatim]),
        headers={"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 202 and response.json()["accepted"] == 2
    published = values(await read_topic(settings, settings.topics.usage, expected=2))
    by_id = {v["event_id"]: v for v in published}
    assert by_id[valid["event_id"]]["account_id"] == valid["account_id"]
    assert by_id[verbatim["event_id"]]["account_id"] == verbatim["account_id"]
    assert by_id[verbatim["event_id"]]["properties"] == verbatim["properties"]
    text = recorder.text()
    assert recorder.records, "no log record was captured: the check would prove nothing"
    for secret in SECRETS:
        assert secret not in text
