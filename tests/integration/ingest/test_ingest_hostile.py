"""Hostile input against a live ingest server: each finding has a test that failed before.

Oversized bodies get a JSON 413 (not a reset); blank identifiers, fractional
survey scores and event times outside the window are 422 at the field; deep
nesting and lone surrogates are 4xx in every body format; an unsigned Stripe
upload is refused before its body is read or inflated; ``properties.csm`` is
honoured only on account events from ``/v1/events``.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from healthstream.settings import Settings
from services.ingest import parsing
from services.ingest.adapters.signatures import stripe_signature
from tests.integration.ingest.live import (
    ADMIN_KEY,
    INGEST_KEY,
    STRIPE_SECRET,
    LiveServer,
    event,
    ingest_settings,
    read_topic,
    values,
)
from tests.unit.ingest import vendor_payloads as vp

JSON = {"Content-Type": "application/json"}
AUTH = {**JSON, "Authorization": f"Bearer {INGEST_KEY}"}


def post(server: LiveServer, path: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.post(path, content=raw, headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    return body


def raw_post(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
    """POST as curl or requests do: send the whole body, then read the answer.

    (httpx reads an early answer even when its upload is cut short, which hides the
    reset other clients get; a plain socket does not.)
    """
    head = f"POST {path} HTTP/1.1\r\nHost: ingest\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        return read_answer(sock)


def read_answer(sock: socket.socket) -> tuple[int, Any]:
    """Status and JSON body of one HTTP answer: headers, then the body by Content-Length."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before an answer"
        received += chunk
    header_block, _, rest = received.partition(b"\r\n\r\n")
    lines = header_block.decode().split("\r\n")
    length = next(int(v) for k, _, v in (x.partition(": ") for x in lines) if k == "content-length")
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-answer"
        rest += chunk
    return int(lines[0].split()[1]), orjson.loads(rest[:length])


def test_eight_megabyte_body_gets_a_json_413_not_a_reset(ingest_server: LiveServer) -> None:
    raw = b"[" + b",".join([orjson.dumps(event(0))] * 42_000) + b"]"
    assert len(raw) > 8 * 1024 * 1024
    # 30 MB: more than loopback socket buffers absorb, so a server that answers and
    # closes without reading the body resets the upload every time, not by chance.
    huge = raw[:-1] + b"," + b",".join([orjson.dumps(event(1))] * 120_000) + b"]"
    assert len(huge) > 30 * 1024 * 1024
    auth = {"Authorization": f"Bearer {INGEST_KEY}"}
    for kind, body_bytes in [
        ("application/json", raw),
        ("application/x-ndjson", raw),
        ("application/json", huge),
    ]:
        headers = {**auth, "Content-Type": kind}
        status, body = raw_post(ingest_server.port, "/v1/events", headers, body_bytes)
        assert (status, body["error"]) == (413, "payload_too_large")
        assert "larger than 5242880 bytes" in body["message"]
    # Streamed without a Content-Length (chunked): the same answer.
    with httpx.Client(base_url=ingest_server.url, timeout=60) as client:
        chunks = (raw[i : i + 65536] for i in range(0, len(raw), 65536))
        response = client.post("/v1/events", content=chunks, headers=AUTH)
    assert response.status_code == 413 and error_of(response)["error"] == "payload_too_large"
    # An unauthenticated 8 MB upload reads its 401, a Stripe one without signature too.
    status, body = raw_post(ingest_server.port, "/v1/events", JSON, huge)
    assert (status, body["error"]) == (401, "unauthorized")
    status, body = raw_post(ingest_server.port, "/v1/sources/stripe", JSON, raw)
    assert (status, body["error"]) == (401, "invalid_signature")
    assert (
        httpx.post(f"{ingest_server.url}/v1/events", json=event(1), headers=AUTH).status_code == 202
    )


@pytest.mark.parametrize("field", ["event_id", "account_id", "name"])
def test_blank_identifiers_are_refused_at_the_field(ingest_server: LiveServer, field: str) -> None:
    for blank in (" ", "    ", "\u00a0\u3000\u2003"):
        raw = orjson.dumps([event(0), event(1, **{field: blank})])
        response = post(ingest_server, "/v1/events", raw, AUTH)
        assert response.status_code == 422, response.text
        [error] = error_of(response)["errors"]
        assert (error["index"], error["loc"]) == (1, [field])
        assert "blank" in error["msg"]


def test_survey_scores_are_whole_points(ingest_server: LiveServer) -> None:
    nps = event(0, type="feedback", name="nps.response", properties={"score": 7.5})
    csat = event(1, type="feedback", name="csat.response", properties={"score": 4.5})
    response = post(ingest_server, "/v1/events", orjson.dumps([nps, csat]), AUTH)
    assert response.status_code == 422
    errors = error_of(response)["errors"]
    assert [(e["index"], e["loc"]) for e in errors] == [
        (0, ["properties", "score"]),
        (1, ["properties", "score"]),
    ]
    assert "integer from 0 to 10" in errors[0]["msg"] and "integer from 1 to 5" in errors[1]["msg"]
    whole = event(2, type="feedback", name="nps.response", properties={"score": 7})
    assert post(ingest_server, "/v1/events", orjson.dumps(whole), AUTH).status_code == 202


async def test_event_time_window_and_representable_range(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    now = datetime.now(UTC)
    stamp = lambda moment: moment.isoformat().replace("+00:00", "Z")  # noqa: E731
    cases = {
        "9999-12-31T23:59:59-01:00": "representable range",  # year 10000 in UTC
        "0001-01-01T00:00:00+01:00": "representable range",  # year 0 in UTC
        "1969-12-31T23:59:59Z": "before 1970-01-01T00:00:00Z",
        stamp(now + timedelta(minutes=10)): "ahead of the ingest clock",
        stamp(now + timedelta(days=365)): "ahead of the ingest clock",
    }
    for occurred_at, expected in cases.items():
        raw = orjson.dumps(event(0, occurred_at=occurred_at))
        response = post(ingest_server, "/v1/events", raw, AUTH)
        assert response.status_code == 422, (occurred_at, response.text)
        [error] = error_of(response)["errors"]
        assert error["loc"] == ["occurred_at"] and expected in error["msg"], (occurred_at, error)
    # Inside the window: a backfill from 1970, and clock skew of a minute ahead.
    ok = [
        event(1, occurred_at="1970-01-01T00:00:00Z"),
        event(2, occurred_at=stamp(now + timedelta(minutes=1))),
    ]
    response = post(ingest_server, "/v1/events", orjson.dumps(ok), AUTH)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    published = values(await read_topic(kafka_settings, kafka_settings.topics.usage, expected=2))
    assert sorted(v["event_id"] for v in published) == sorted(e["event_id"] for e in ok)


def test_event_time_window_is_configurable(kafka_settings: Settings) -> None:
    settings = ingest_settings(
        kafka_settings,
        event_time_min=datetime(2020, 1, 1, tzinfo=UTC),
        event_time_max_future_seconds=0,
    )
    server = LiveServer(settings).start()
    try:
        old = post(server, "/v1/events", orjson.dumps(event(0)), AUTH)
        assert old.status_code == 202  # 2024 is after 2020
        older = event(1, occurred_at="2019-12-31T23:59:59Z")
        response = post(server, "/v1/events", orjson.dumps(older), AUTH)
        assert "before 2020-01-01T00:00:00Z" in error_of(response)["errors"][0]["msg"]
    finally:
        server.stop()


DEEP = b"[" * 10_000 + b"]" * 10_000
SURROGATE_DEEP = b'{"event_id": "\\ud800", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"


def test_deep_nesting_and_lone_surrogates_are_4xx_in_every_format(
    ingest_server: LiveServer,
) -> None:
    ndjson = {**AUTH, "Content-Type": "application/x-ndjson"}
    deep_ndjson = orjson.dumps(event(0)) + b"\n" + SURROGATE_DEEP + b"\n"
    for path, raw, headers in [
        ("/v1/events", DEEP, AUTH),
        ("/v1/events", SURROGATE_DEEP, AUTH),
        ("/v1/events", deep_ndjson, ndjson),
        ("/v1/sources/segment", SURROGATE_DEEP, AUTH),
        ("/v1/sources/zendesk", DEEP, AUTH),
    ]:
        response = post(ingest_server, path, raw, headers)
        assert response.status_code == 400, (path, response.text)
        body = error_of(response)
        assert body["error"] == "json_too_deep" and "nested deeper than 64" in body["message"]
    assert error_of(post(ingest_server, "/v1/events", deep_ndjson, ndjson))["line"] == 2
    # A lone surrogate alone (shallow) is named at its field, in every format.
    raw_track = orjson.dumps({**vp.segment_track(), "properties": {}}).replace(
        b'"properties":{}', b'"properties":{"feature":"\\ud800"}'
    )
    single = orjson.dumps(event(0)).replace(b'"name":"feature.used"', b'"name":"\\udc00"')
    for path, raw, headers, loc in [
        ("/v1/events", single, AUTH, ["name"]),
        ("/v1/events", single + b"\n", ndjson, ["name"]),
        ("/v1/sources/segment", raw_track, AUTH, ["properties", "feature"]),
    ]:
        response = post(ingest_server, path, raw, headers)
        assert response.status_code == 422, (path, response.text)
        assert error_of(response)["errors"][0]["loc"] == loc


def test_unsigned_stripe_upload_is_refused_before_reading_or_inflating(
    ingest_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    inflated: list[int] = []
    real_gunzip = parsing.gunzip_bounded

    def counting_gunzip(data: bytes, limit: int, max_members: int = 64) -> bytes:
        inflated.append(len(data))
        return real_gunzip(data, limit, max_members)

    monkeypatch.setattr(parsing, "gunzip_bounded", counting_gunzip)
    gz = {**JSON, "Content-Encoding": "gzip"}
    # Not gzip at all: inflating first would answer 400; authenticating first answers 401.
    response = post(ingest_server, "/v1/sources/stripe", b"not gzip", gz)
    assert response.status_code == 401 and error_of(response)["error"] == "invalid_signature"
    # 5 MB of empty gzip members, no signature: refused at once, the body never inflated.
    empty_members = gzip.compress(b"") * (5 * 1024 * 1024 // len(gzip.compress(b"")))
    response = post(ingest_server, "/v1/sources/stripe", empty_members, gz)
    assert response.status_code == 401 and "missing Stripe-Signature" in response.json()["message"]
    now = int(time.time())
    # A well-formed but forged signature: the body is read (bounded) to check it, never inflated.
    forged = {**gz, "Stripe-Signature": stripe_signature("whsec_forged", empty_members, now)}
    response = post(ingest_server, "/v1/sources/stripe", empty_members, forged)
    assert response.status_code == 401 and "does not match" in response.json()["message"]
    # Stripe signs the bytes it sends: a signature over the inflated payload does not
    # authenticate a compressed body, so that one is not inflated either.
    payload = orjson.dumps(vp.stripe_invoice())
    over_plain = {**gz, "Stripe-Signature": stripe_signature(STRIPE_SECRET, payload, now)}
    response = post(ingest_server, "/v1/sources/stripe", gzip.compress(payload), over_plain)
    assert response.status_code == 401 and "does not match" in response.json()["message"]
    assert inflated == []
    # Signed as sent, so authenticated: the member count is bounded, in a worker thread.
    members = b"".join(gzip.compress(payload[i : i + 1]) for i in range(len(payload)))
    signed = {**gz, "Stripe-Signature": stripe_signature(STRIPE_SECRET, members, now)}
    response = post(ingest_server, "/v1/sources/stripe", members, signed)
    assert response.status_code == 400 and "more than 64 members" in response.json()["message"]
    # ...and the same payload in one member is accepted: gzip still works.
    one = gzip.compress(payload)
    signed = {**gz, "Stripe-Signature": stripe_signature(STRIPE_SECRET, one, now)}
    response = post(ingest_server, "/v1/sources/stripe", one, signed)
    assert response.status_code == 202, response.text
    assert inflated == [len(members), len(one)]
    # The service answered all along.
    assert httpx.get(f"{ingest_server.url}/healthz", timeout=10).status_code == 200


def test_healthz_answers_while_a_gzip_bomb_is_uploaded_and_inflated(
    ingest_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By condition: the bomb is held half-sent, then held mid-inflation, and each time
    ``/healthz`` must answer before the bomb may go on (on the event loop it could not)."""
    inflating, release = threading.Event(), threading.Event()
    real_gunzip = parsing.gunzip_bounded

    def gated_gunzip(data: bytes, limit: int, max_members: int = 64) -> bytes:
        inflating.set()
        assert release.wait(60), "the test never released the inflation"
        return real_gunzip(data, limit, max_members)

    monkeypatch.setattr(parsing, "gunzip_bounded", gated_gunzip)
    empty = gzip.compress(b"")
    bomb = empty * (5 * 1024 * 1024 // len(empty))
    assert len(bomb) <= ingest_server.settings.max_body_bytes
    headers = {
        **JSON,
        "Content-Encoding": "gzip",
        "Stripe-Signature": stripe_signature(STRIPE_SECRET, bomb, int(time.time())),
    }
    head = f"POST /v1/sources/stripe HTTP/1.1\r\nHost: ingest\r\nContent-Length: {len(bomb)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", ingest_server.port), timeout=60) as sock:
        sock.sendall(head.encode() + bomb[: len(bomb) // 2])
        # Half the body is still to come: the request is being read.
        assert httpx.get(f"{ingest_server.url}/healthz", timeout=30).status_code == 200
        sock.sendall(bomb[len(bomb) // 2 :])
        assert inflating.wait(60), "the signed bomb was never inflated"
        # The inflation is held in its worker thread: the loop must still answer.
        assert httpx.get(f"{ingest_server.url}/healthz", timeout=30).status_code == 200
        release.set()
        status, body = read_answer(sock)
    assert status == 400, body
    assert "members" in body["message"]


def test_empty_gzip_members_to_an_authenticated_route_are_bounded(
    ingest_server: LiveServer,
) -> None:
    empty_members = gzip.compress(b"") * 200_000
    headers = {**AUTH, "Content-Encoding": "gzip"}
    response = post(ingest_server, "/v1/sources/segment", empty_members, headers)
    assert response.status_code == 400 and "members" in error_of(response)["message"]


async def test_csm_is_honoured_only_on_account_events_of_v1_events(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    topics = kafka_settings.topics
    owner = event(0, type="account", name="account.updated", properties={"csm": "ann@x.example"})
    claim = event(
        1, type="billing", name="invoice.paid", properties={"csm": "mallory", "amount": 1}
    )
    response = post(ingest_server, "/v1/events", orjson.dumps([owner, claim]), AUTH)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    # An unsigned Segment track and a Segment group trait: never ownership.
    track = vp.segment_track("acme")
    track["properties"]["csm"] = "mallory"
    group = vp.segment_group("acme")
    group["traits"]["csm"] = "mallory"
    batch = vp.segment_batch(track, group)
    response = post(ingest_server, "/v1/sources/segment", orjson.dumps(batch), AUTH)
    assert response.status_code == 202 and response.json()["accepted"] == 2

    accounts = values(await read_topic(kafka_settings, topics.account, expected=2))
    usage = values(await read_topic(kafka_settings, topics.usage, expected=1))
    billing = values(await read_topic(kafka_settings, topics.billing, expected=1))
    csm_by_id = {v["event_id"]: v["properties"].get("csm") for v in [*accounts, *usage, *billing]}
    assert csm_by_id[owner["event_id"]] == "ann@x.example"
    assert csm_by_id[claim["event_id"]] is None
    assert csm_by_id[f"segment:{track['messageId']}"] is None
    assert csm_by_id[f"segment:{group['messageId']}"] is None
    assert billing[0]["properties"]["amount"] == 1  # the rest of the event is intact
    metrics = httpx.get(f"{ingest_server.url}/metrics", timeout=10).text
    assert 'healthstream_ingest_ownership_ignored_total{source="api"} 1.0' in metrics
    assert 'healthstream_ingest_ownership_ignored_total{source="segment"} 2.0' in metrics


def test_ownership_can_require_an_admin_key(kafka_settings: Settings) -> None:
    server = LiveServer(ingest_settings(kafka_settings, ownership_requires_admin=True)).start()
    try:
        owner = event(0, type="account", name="account.updated", properties={"csm": "ann"})
        response = post(server, "/v1/events", orjson.dumps(owner), AUTH)
        assert response.status_code == 422
        [error] = error_of(response)["errors"]
        assert error["loc"] == ["properties", "csm"] and "admin scope" in error["msg"]
        admin = {**JSON, "Authorization": f"Bearer {ADMIN_KEY}"}
        assert post(server, "/v1/events", orjson.dumps(owner), admin).status_code == 202
    finally:
        server.stop()


def test_half_sent_oversized_body_does_not_wedge_the_server(ingest_server: LiveServer) -> None:
    """A client that declares 8 MB, sends a little and hangs up: the server moves on."""
    with socket.create_connection(("127.0.0.1", ingest_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {INGEST_KEY}\r\n".encode()
            + b"Content-Length: 8388608\r\n\r\n"
            + b"[" * 1000
        )
    response = post(ingest_server, "/v1/events", orjson.dumps(event(0)), AUTH)
    assert response.status_code == 202
