"""POST /v1/events against a real uvicorn server and the embedded broker."""

from __future__ import annotations

import gzip
import logging
from typing import Any

import httpx
import orjson
import pytest

from healthstream.settings import Settings
from tests.integration.ingest.live import (
    ADMIN_KEY,
    INGEST_KEY,
    READ_ONLY_KEY,
    LiveServer,
    event,
    read_topic,
    values,
)


async def post(
    server: LiveServer, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> httpx.Response:
    sent_headers = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"}
    sent_headers.update(headers or {})
    content = raw if raw is not None else orjson.dumps(body)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        return await client.post("/v1/events", content=content, headers=sent_headers)


async def test_every_body_shape_is_published_keyed_by_account(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    single = event(0)
    array = [event(1), event(2, type="billing", name="invoice.paid", properties={"amount": 99.5})]
    envelope = {"events": [event(3)]}
    ndjson_events = [event(4), event(5)]
    ndjson = b"\n".join(orjson.dumps(e) for e in ndjson_events) + b"\n"
    gzipped = [event(6)]

    assert (await post(ingest_server, single)).json() == {
        "accepted": 1,
        "duplicates": 0,
        "dead_lettered": 0,
        "ignored": 0,
    }
    assert (await post(ingest_server, array)).json()["accepted"] == 2
    assert (await post(ingest_server, envelope)).json()["accepted"] == 1
    response = await post(ingest_server, None, {"Content-Type": "application/x-ndjson"}, raw=ndjson)
    assert response.status_code == 202 and response.json()["accepted"] == 2
    response = await post(
        ingest_server,
        None,
        {"Content-Encoding": "gzip"},
        raw=gzip.compress(orjson.dumps(gzipped)),
    )
    assert response.status_code == 202 and response.json()["accepted"] == 1

    topics = kafka_settings.topics
    usage = await read_topic(kafka_settings, topics.usage, expected=6)
    billing = await read_topic(kafka_settings, topics.billing, expected=1)
    sent_usage = [single, array[0], *envelope["events"], *ndjson_events, *gzipped]
    assert sorted(v["event_id"] for v in values(usage)) == sorted(e["event_id"] for e in sent_usage)
    for record in usage:
        value = orjson.loads(record.value)
        assert record.key == value["account_id"].encode()
        assert value["source"] == "api"
        assert value["occurred_at"] == "2024-05-01T12:00:00Z"
    [paid] = values(billing)
    assert paid["event_id"] == array[1]["event_id"]
    assert paid["properties"] == {"amount": 99.5}


async def test_invalid_batch_lists_every_bad_item_and_publishes_nothing(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    batch = [
        event(0),
        event(1, occurred_at="2024-05-01T12:00:00"),  # naive
        event(2, type="billing", name="invoice.paid", properties={"amount": "ten"}),
        event(3),
        event(4, type="Usage"),
        event(5, name="nps.response", type="feedback", properties={"score": 11}),
        "not an object",
        {k: v for k, v in event(7).items() if k != "account_id"},
        event(8, occurred_at=1714564800),
        event(9, occurred_at="2024-02-30T00:00:00Z"),
        event(10, event_id="bad\u0000id"),
    ]
    response = await post(ingest_server, batch)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    got = {e["index"]: e["loc"] for e in body["errors"]}
    assert got == {
        1: ["occurred_at"],
        2: ["properties", "amount"],
        4: ["type"],
        5: ["properties", "score"],
        6: [],
        7: ["account_id"],
        8: ["occurred_at"],
        9: ["occurred_at"],
        10: ["event_id"],
    }
    assert all(e["msg"] for e in body["errors"])
    surrogate = b'[{"event_id": "\\ud800", "account_id": "a", "type": "usage", "name": "n", '
    surrogate += b'"occurred_at": "2024-05-01T12:00:00Z"}]'
    r = await post(ingest_server, None, raw=surrogate)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["event_id"]
    # The two valid items were not published either.
    assert await read_topic(kafka_settings, kafka_settings.topics.usage, 0, timeout=2) == []


async def test_error_status_codes_are_json_with_clear_messages(ingest_server: LiveServer) -> None:
    ok = [event(0)]
    r = await post(ingest_server, None, raw=b'[{"event_id": "a",\n  "account_id": }]')
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_json"
    assert (r.json()["line"], r.json()["column"]) == (2, 17)

    ndjson = orjson.dumps(event(1)) + b"\n" + orjson.dumps(event(2)) + b"\n{oops\n"
    r = await post(ingest_server, None, {"Content-Type": "application/x-ndjson"}, raw=ndjson)
    assert r.status_code == 400 and r.json()["line"] == 3

    r = await post(ingest_server, None, {"Content-Encoding": "gzip"}, raw=b"not gzip at all")
    assert r.status_code == 400 and "gzip" in r.json()["message"]

    r = await post(ingest_server, ok, {"Authorization": ""})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert "missing" in r.json()["message"]
    r = await post(ingest_server, ok, {"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "unknown" in r.json()["message"]
    assert "nope" not in r.text
    r = await post(ingest_server, ok, {"Authorization": f"Bearer {READ_ONLY_KEY}"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = await post(ingest_server, [event(3)], {"Authorization": "", "X-API-Key": INGEST_KEY})
    assert r.status_code == 202
    r = await post(ingest_server, [event(4)], {"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 202

    r = await post(ingest_server, ok, {"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = await post(ingest_server, ok, {"Content-Encoding": "br"})
    assert r.status_code == 415

    limit = ingest_server.settings.max_body_bytes
    big = orjson.dumps([event(5, properties={"blob": "x" * (limit + 10)})])
    r = await post(ingest_server, None, raw=big)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    bomb = gzip.compress(b"[" + b" " * (limit + 10) + b"]")
    assert len(bomb) < limit // 100
    r = await post(ingest_server, None, {"Content-Encoding": "gzip"}, raw=bomb)
    assert r.status_code == 413
    tiny = {"event_id": "e", "account_id": "a", "type": "usage", "name": "n", "occurred_at": "x"}
    too_many = [tiny] * (ingest_server.settings.max_batch_events + 1)
    r = await post(ingest_server, too_many)
    assert r.status_code == 413 and "10000" in r.json()["message"]

    async with httpx.AsyncClient(base_url=ingest_server.url) as client:
        r = await client.get("/v1/nothing-here")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        r = await client.get("/v1/events")
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


async def test_retried_batch_reports_duplicates_and_is_not_republished(
    ingest_server: LiveServer, kafka_settings: Settings
) -> None:
    batch = [event(0), event(1), event(2)]
    first = await post(ingest_server, batch)
    assert first.json() | {} == {"accepted": 3, "duplicates": 0, "dead_lettered": 0, "ignored": 0}
    again = await post(ingest_server, batch)
    assert again.status_code == 202
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)
    repeated_inside = [event(3), batch[0]]
    repeated_inside.append(dict(repeated_inside[0]))
    r = await post(ingest_server, repeated_inside)
    assert (r.json()["accepted"], r.json()["duplicates"]) == (1, 2)
    records = await read_topic(kafka_settings, kafka_settings.topics.usage, expected=4)
    ids = [v["event_id"] for v in values(records)]
    assert sorted(ids) == sorted({e["event_id"] for e in [*batch, repeated_inside[0]]})


async def test_probes_and_metrics(ingest_server: LiveServer) -> None:
    await post(ingest_server, [event(0), event(1)])
    await post(ingest_server, [event(2, occurred_at="yesterday")])
    async with httpx.AsyncClient(base_url=ingest_server.url) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"broker": True}
        text = (await client.get("/metrics")).text
    assert 'healthstream_ingest_requests_total{route="/v1/events",status="202"} 1.0' in text
    assert 'healthstream_ingest_requests_total{route="/v1/events",status="422"} 1.0' in text
    assert 'healthstream_ingest_events_accepted_total{source="api"} 2.0' in text
    assert 'healthstream_ingest_events_rejected_total{reason="invalid"} 1.0' in text
    assert "healthstream_ingest_publish_latency_seconds_count 1.0" in text
    assert 'healthstream_ingest_batch_size_events_bucket{le="5.0"} 1.0' in text


async def test_keys_never_reach_logs_or_answers(
    ingest_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret_guess = "sk-live-should-never-be-logged-42"
    for headers in (
        {"Authorization": f"Bearer {secret_guess}"},
        {"Authorization": "", "X-API-Key": secret_guess},
        {"Authorization": f"Bearer {READ_ONLY_KEY}"},
    ):
        r = await post(ingest_server, [event(0)], headers)
        assert r.status_code in (401, 403)
        assert secret_guess not in r.text and READ_ONLY_KEY not in r.text
    assert (await post(ingest_server, [event(1)])).status_code == 202
    logged = caplog.text
    for key in (secret_guess, READ_ONLY_KEY, INGEST_KEY):
        assert key not in logged
    assert "***" in repr(ingest_server.settings.api_keys[0])
