"""API-key authentication for the ingest routes.

Two ways to present a key, because platform teams' tooling differs:
``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Lookup is constant-time
(:meth:`Settings.find_key`), and the key itself never reaches a log line or an
error message.
"""

from __future__ import annotations

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from healthstream.settings import ApiKey, Scope
from services.ingest.errors import ApiError

# auto_error=False: we answer 401 ourselves, in our JSON error shape.
bearer_scheme = HTTPBearer(auto_error=False, description="`Authorization: Bearer <api key>`")
header_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: <api key>`"
)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="healthstream-ingest"'}


def require_ingest_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    header_key: str | None = Security(header_scheme),
) -> ApiKey:
    """FastAPI dependency: the caller's key, which must allow the ``ingest`` scope."""
    presented = (bearer.credentials.strip() if bearer else "") or (header_key or "").strip()
    if not presented:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send Authorization: Bearer <key> or X-API-Key: <key>",
            headers=_CHALLENGE,
        )
    key = request.app.state.settings.find_key(presented)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers=_CHALLENGE)
    if not key.allows(Scope.INGEST):
        raise ApiError(403, "forbidden", "this API key does not have the ingest scope")
    return key
