"""API-key authentication and scope checks for the alerts API.

Keys come from ``Settings.api_keys``; a key arrives as ``Authorization: Bearer``
or ``X-API-Key`` — and, on ``/v1/stream`` only, as ``?api_key=`` because the
browser's EventSource cannot send headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from healthstream.settings import ApiKey, Scope, Settings
from services.alerts.store import Viewer

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False)
query_key = APIKeyQuery(
    name="api_key", auto_error=False, description="Only on /v1/stream (EventSource)."
)


def viewer_for(key: ApiKey) -> Viewer:
    """Admins see everything; a CSM-bound key sees only that CSM's accounts."""
    actor = key.csm or f"key:{key.key[:4]}…"
    restricted = key.csm if Scope.ADMIN not in key.scopes else None
    return Viewer(actor=actor, csm=restricted)


def _authorize(settings: Settings, presented: str | None, scope: Scope) -> Viewer:
    return viewer_for(_authorized_key(settings, presented, scope))


def _authorized_key(settings: Settings, presented: str | None, scope: Scope) -> ApiKey:
    if not presented:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send Authorization: Bearer <key> or X-API-Key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = settings.find_key(presented)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown API key", headers={"WWW-Authenticate": "Bearer"}
        )
    if not key.allows(scope):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"this API key lacks the {scope} scope")
    return key


def require(settings: Settings, scope: Scope) -> Callable[..., Awaitable[Viewer]]:
    async def dependency(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        api_key: str | None = Depends(header_key),
    ) -> Viewer:
        presented = credentials.credentials if credentials else api_key
        return _authorize(settings, presented, scope)

    return dependency


def require_key(settings: Settings, scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """Like :func:`require`, but yields the key itself (for ``GET /v1/me``)."""

    async def dependency(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        api_key: str | None = Depends(header_key),
    ) -> ApiKey:
        presented = credentials.credentials if credentials else api_key
        return _authorized_key(settings, presented, scope)

    return dependency


def require_stream(settings: Settings) -> Callable[..., Awaitable[Viewer]]:
    async def dependency(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        api_key: str | None = Depends(header_key),
        query: str | None = Depends(query_key),
    ) -> Viewer:
        presented = (credentials.credentials if credentials else None) or api_key or query
        return _authorize(settings, presented, Scope.ALERTS_READ)

    return dependency
