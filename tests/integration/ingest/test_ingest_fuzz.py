"""Property-based: random and mutated JSON (and random bytes) never get a 5xx.

Every answer must be one of the documented statuses with a JSON body in the
documented shape, whatever the body, content type or encoding.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.ingest.live import INGEST_KEY, LiveServer
from tests.unit.ingest import vendor_payloads as vp

DOCUMENTED = {202, 400, 401, 413, 415, 422}
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
VALID = {
    "event_id": "e-1",
    "account_id": "acct-1",
    "type": "billing",
    "name": "invoice.paid",
    "occurred_at": "2024-05-01T12:00:00Z",
    "source": "api",
    "properties": {"amount": 10.0, "currency": "EUR", "quantity": 1, "priority": "high"},
}
KEYS = [*VALID, "properties.amount", "properties.quantity", "properties.score", "extra"]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields dropped, retyped or replaced by tricky strings."""
    event: dict[str, Any] = json.loads(json.dumps(VALID))
    event["event_id"] = draw(st.text(min_size=1, max_size=40))
    event["name"] = draw(st.sampled_from(["invoice.paid", "nps.response", "csat.response"]))
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        value = draw(
            json_values
            | st.sampled_from(
                [
                    "2024-13-01T00:00:00Z",
                    "2024-05-01T12:00:00",
                    "2024-05-01T12:00:00+25:00",
                    "\ud800",
                    "x\u0000y",
                    "USAGE",
                    1e308,
                    -1,
                    "",
                ]
            )
        )
        if draw(st.booleans()) and "." not in key:
            event.pop(key, None)
        elif key.startswith("properties."):
            props = event.get("properties")
            if isinstance(props, dict):
                props[key.split(".", 1)[1]] = value
        else:
            event[key] = value
    return event


def encode(value: Any) -> bytes:
    # surrogatepass: lone surrogates must reach the server, not crash the test client.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def check(response: httpx.Response, allowed: set[int] = DOCUMENTED) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code in allowed, (response.status_code, response.text)
    body = response.json()
    if response.status_code == 202:
        assert set(body) == {"accepted", "duplicates", "dead_lettered", "ignored"}
    else:
        assert isinstance(body["error"], str) and isinstance(body["message"], str)
        for error in body.get("errors", []):
            assert set(error) == {"index", "loc", "msg"}


@pytest.fixture(scope="module")
def client(module_ingest_server: LiveServer) -> Any:
    with httpx.Client(
        base_url=module_ingest_server.url,
        headers={"Authorization": f"Bearer {INGEST_KEY}"},
        timeout=30,
    ) as http:
        yield http


@FUZZ
@given(batch=st.lists(mutated_events() | json_values, max_size=5), shape=st.integers(0, 2))
def test_mutated_events_never_5xx(client: httpx.Client, batch: list[Any], shape: int) -> None:
    body: Any = batch if shape == 0 else {"events": batch} if shape == 1 else batch[:1] or {}
    check(
        client.post(
            "/v1/events", content=encode(body), headers={"Content-Type": "application/json"}
        )
    )


@FUZZ
@given(value=json_values)
def test_random_json_never_5xx(client: httpx.Client, value: Any) -> None:
    body = encode(value)
    for path in ("/v1/events", "/v1/sources/segment", "/v1/sources/zendesk"):
        check(client.post(path, content=body, headers={"Content-Type": "application/json"}))
    check(
        client.post(
            "/v1/sources/stripe", content=body, headers={"Content-Type": "application/json"}
        )
    )


@FUZZ
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "application/x-ndjson", "text/plain", "", "application/json; x"]
    ),
    gzipped=st.booleans(),
)
def test_random_bytes_never_5xx(
    client: httpx.Client, raw: bytes, content_type: str, gzipped: bool
) -> None:
    headers = {"Content-Type": content_type}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        raw = gzip.compress(raw) if len(raw) % 2 else raw  # valid and invalid gzip
    check(client.post("/v1/events", content=raw, headers=headers))


@FUZZ
@given(
    data=st.data(),
    builder=st.sampled_from(
        [vp.segment_track, vp.segment_group, vp.zendesk_ticket, vp.zendesk_satisfaction]
    ),
)
def test_mutated_vendor_payloads_never_5xx(client: httpx.Client, data: Any, builder: Any) -> None:
    payload = builder()
    for key in data.draw(st.lists(st.sampled_from(sorted(payload)), max_size=3)):
        payload[key] = data.draw(json_values)
    path = "/v1/sources/segment" if "segment" in builder.__name__ else "/v1/sources/zendesk"
    check(client.post(path, content=encode(payload), headers={"Content-Type": "application/json"}))
