"""Webhook signature checks (HMAC), each after the vendor's documented scheme.

* Stripe: ``Stripe-Signature: t=<unix>,v1=<hex hmac-sha256(secret, "<t>.<body>")>``
  (several ``v1`` while a secret is rolled). The timestamp must be within the
  tolerance of now, so a captured request cannot be replayed later; a replay
  inside the tolerance carries the same Stripe event id and is a duplicate.
* Zendesk: ``X-Zendesk-Webhook-Signature: base64(hmac-sha256(secret, timestamp + body))``
  with ``X-Zendesk-Webhook-Signature-Timestamp`` (ISO 8601), same tolerance rule.
* Segment: ``X-Signature: hex(hmac-sha1(shared secret, body))``.

All comparisons are constant-time. Failures raise :class:`SignatureError`
with a message that says what is wrong without echoing the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import datetime


class SignatureError(Exception):
    pass


def stripe_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value Stripe would send (used by tests and the docs' examples)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def parse_stripe_header(header: str | None) -> tuple[int, list[str]]:
    """``(t, [v1...])`` of a ``Stripe-Signature`` header; needs no body, so it runs first."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("Stripe-Signature timestamp is not an integer") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("Stripe-Signature must contain t= and at least one v1=")
    return timestamp, candidates


def verify_stripe(
    header: str | None, body: bytes, secret: str, tolerance: int, now: float | None = None
) -> int:
    """Return the signed timestamp if the signature is valid and fresh."""
    timestamp, candidates = parse_stripe_header(header)
    expected = stripe_signature(secret, body, timestamp).rsplit("v1=", 1)[1]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise SignatureError("Stripe-Signature does not match the payload")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"Stripe-Signature timestamp is outside the {tolerance}s tolerance (replayed?)"
        )
    return timestamp


def zendesk_signature(secret: str, body: bytes, timestamp: str) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def verify_zendesk(
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    secret: str,
    tolerance: int,
    now: float | None = None,
) -> None:
    if not signature or not timestamp:
        raise SignatureError(
            "missing X-Zendesk-Webhook-Signature or X-Zendesk-Webhook-Signature-Timestamp"
        )
    expected = zendesk_signature(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureError("X-Zendesk-Webhook-Signature does not match the payload")
    try:
        signed_at = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise SignatureError("X-Zendesk-Webhook-Signature-Timestamp is not ISO 8601") from None
    now = time.time() if now is None else now
    if abs(now - signed_at) > tolerance:
        raise SignatureError(
            f"Zendesk signature timestamp is outside the {tolerance}s tolerance (replayed?)"
        )


def segment_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def verify_segment(signature: str | None, body: bytes, secret: str) -> None:
    if not signature:
        raise SignatureError("missing X-Signature header")
    if not hmac.compare_digest(segment_signature(secret, body).encode(), signature.encode()):
        raise SignatureError("X-Signature does not match the payload")
