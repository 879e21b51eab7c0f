"""HMAC signatures on JSON webhooks, and how a receiver checks them.

Headers sent with every JSON delivery::

    X-Healthstream-Timestamp: 1763887200            (unix seconds)
    X-Healthstream-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
    X-Healthstream-Delivery: <delivery id>          (same on every retry: dedupe on it)

Signing the timestamp with the body lets a receiver reject replays of an old,
captured request (:func:`verify` refuses anything older than ``tolerance``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Healthstream-Timestamp"
SIGNATURE_HEADER = "X-Healthstream-Signature"
DELIVERY_HEADER = "X-Healthstream-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours for this body and the timestamp is fresh."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)
