"""API-key authentication, scope checks and team scope for the alerts API.

Keys come from ``Settings.api_keys``; a key arrives as ``Authorization: Bearer``
or ``X-API-Key`` — and, on ``/v1/stream`` only, as ``?api_key=`` because the
browser's EventSource cannot send headers.

Every route that shows or changes alerts, accounts or figures depends on
:func:`require` (or :func:`require_stream`), which answers *who* is asking as a
:class:`~services.alerts.store.Viewer` with the owners they may see, resolved
from the routing config's teams and the route's ``?view=mine|team``. A route
filters by ``viewer.owners`` and honours the team scope without more code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from healthstream.settings import ApiKey, Scope, Settings
from services.alerts.routing import RoutingConfig
from services.alerts.store import Viewer

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")
header_key = APIKeyHeader(name="X-API-Key", auto_error=False)
query_key = APIKeyQuery(
    name="api_key", auto_error=False, description="Only on /v1/stream (EventSource)."
)


class View(StrEnum):
    """``?view=``: "accounts I own" or "my team's accounts" (a lead's whole tree)."""

    MINE = "mine"
    TEAM = "team"


ViewQuery = Annotated[
    View | None,
    Query(
        alias="view",
        description="mine: the key's own accounts; team (default for a CSM key): also "
        "those of the teams the CSM leads and their sub-teams. Admins see all unless set.",
    ),
]


def viewer_for(
    key: ApiKey, routing: RoutingConfig | None = None, view: View | None = None
) -> Viewer:
    """Who the key is and what it sees.

    A CSM-bound key sees its CSM's accounts, and with the team view (its
    default) those of every team the CSM leads, sub-teams included. An admin
    sees everything, unless it names a view, which then scopes it like its CSM.
    """
    actor = key.csm or f"key:{key.key[:4]}…"
    admin = Scope.ADMIN in key.scopes
    if admin and view is None:
        return Viewer(actor=actor)
    if key.csm is None:
        if admin:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [
                    {
                        "loc": ["query", "view"],
                        "msg": "this key is tied to no CSM (`@csm`): it has no own accounts",
                        "type": "value_error",
                    }
                ],
            )
        return Viewer(actor=actor)
    team: frozenset[str] = frozenset()
    if view in (None, View.TEAM) and routing is not None:
        team = routing.visible_owners(key.csm) - {key.csm}
    return Viewer(actor=actor, csm=key.csm, team=team)


def _routing(request: Request) -> RoutingConfig | None:
    service = getattr(request.app.state, "service", None)
    return getattr(service, "routing", None)


def _authorize(
    settings: Settings, presented: str | None, scope: Scope, request: Request, view: View | None
) -> Viewer:
    return viewer_for(_authorized_key(settings, presented, scope), _routing(request), view)


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
        request: Request,
        view: ViewQuery = None,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        api_key: str | None = Depends(header_key),
    ) -> Viewer:
        presented = credentials.credentials if credentials else api_key
        return _authorize(settings, presented, scope, request, view)

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
        request: Request,
        view: ViewQuery = None,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        api_key: str | None = Depends(header_key),
        query: str | None = Depends(query_key),
    ) -> Viewer:
        presented = (credentials.credentials if credentials else None) or api_key or query
        return _authorize(settings, presented, Scope.ALERTS_READ, request, view)

    return dependency
