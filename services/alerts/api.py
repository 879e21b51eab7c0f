"""REST API ``/v1`` and the Server-Sent-Events stream (contract: docs/alerts.md)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from healthstream.settings import ApiKey, Scope
from schemas import AlertReason, AlertSeverity
from services.alerts import store
from services.alerts.auth import require, require_key, require_stream, viewer_for
from services.alerts.db import AlertRow, utcnow
from services.alerts.models import (
    Account,
    AccountList,
    AccountSort,
    AcknowledgeRequest,
    Alert,
    AlertPage,
    AlertStatus,
    AssignRequest,
    AuditLog,
    DeliveryPage,
    DeliveryState,
    Me,
    ResolveRequest,
    SnoozeRequest,
    UtcTimestamp,
)
from services.alerts.store import Conflict, NotFound, Viewer

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown, or belongs to another CSM"}
}
AUTH: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "Scope missing"},
}


def _bad_request(field: str, location: str, message: str) -> HTTPException:
    """A 422 shaped like FastAPI's own, naming the field."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": [location, field], "msg": message, "type": "value_error"}],
    )


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (Union, types.UnionType):
        return any(_takes_many(arg) for arg in get_args(annotation))
    return False


async def _single_valued_query(request: Request) -> None:
    """``?account_id=a&account_id=b`` is a 422 naming the field, not silently ``b``.

    FastAPI keeps the last value of a repeated scalar parameter; for a filter that
    would answer a different question than the caller asked.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    for field in dependant.query_params:
        if _takes_many(field.field_info.annotation):
            continue
        if len(request.query_params.getlist(field.alias)) > 1:
            raise _bad_request(field.alias, "query", "must be given at most once")


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.service.read_sessions() as db:
        yield db


async def _write_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.service.sessions() as db:
        yield db


Session = Annotated[AsyncSession, Depends(_session)]
WriteSession = Annotated[AsyncSession, Depends(_write_session)]


def build_router(service: Any) -> APIRouter:
    """Routes bound to one :class:`~services.alerts.app.AlertsService`."""
    settings = service.settings
    reader = Depends(require(settings, Scope.ALERTS_READ))
    writer = Depends(require(settings, Scope.ALERTS_WRITE))
    admin = Depends(require(settings, Scope.ADMIN))
    router = APIRouter(prefix="/v1", responses=AUTH, dependencies=[Depends(_single_valued_query)])

    @router.get("/me", response_model=Me, tags=["auth"], summary="Who this API key is")
    async def me(key: ApiKey = Depends(require_key(settings, Scope.ALERTS_READ))) -> Me:
        viewer = viewer_for(key, service.routing)
        return Me(
            actor=viewer.actor,
            csm=key.csm,
            scopes=sorted(scope.value for scope in key.scopes),
            can_write=key.allows(Scope.ALERTS_WRITE),
            admin=key.allows(Scope.ADMIN),
            sees_all_accounts=viewer.csm is None,
            leads=service.routing.led_teams(key.csm) if key.csm else [],
            team=sorted(viewer.team),
            assignable=sorted(service.known_csms) if key.allows(Scope.ALERTS_WRITE) else [],
        )

    @router.get("/alerts", response_model=AlertPage, tags=["alerts"], summary="List alerts")
    async def list_alerts(
        db: Session,
        viewer: Viewer = reader,
        status_: Annotated[list[AlertStatus] | None, Query(alias="status")] = None,
        severity: Annotated[list[AlertSeverity] | None, Query()] = None,
        reason: Annotated[list[AlertReason] | None, Query()] = None,
        csm: Annotated[str | None, Query(max_length=256, description="assigned CSM")] = None,
        account_id: Annotated[str | None, Query(max_length=256)] = None,
        since: Annotated[UtcTimestamp | None, Query(description="occurred_at >= since")] = None,
        until: Annotated[UtcTimestamp | None, Query(description="occurred_at < until")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> AlertPage:
        filters = store.AlertFilter(
            status=[s.value for s in status_] if status_ else None,
            severity=[s.value for s in severity] if severity else None,
            reason=[r.value for r in reason] if reason else None,
            csm=csm,
            account_id=account_id,
            since=since,
            until=until,
        )
        try:
            items, next_cursor = await store.list_alerts(db, viewer, filters, limit, cursor)
        except ValueError as exc:
            raise _bad_request("cursor", "query", str(exc)) from None
        return AlertPage(items=items, next_cursor=next_cursor)

    @router.get("/alerts/{alert_id}", response_model=Alert, tags=["alerts"], responses=NOT_FOUND)
    async def get_alert(alert_id: str, db: Session, viewer: Viewer = reader) -> Alert:
        try:
            return store.to_alert(await store.get_alert_row(db, alert_id, viewer))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def _visible_or_404(db: AsyncSession, alert_id: str, viewer: Viewer) -> None:
        try:
            async with db.begin():
                await store.get_alert_row(db, alert_id, viewer)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    async def _act(db: AsyncSession, action: Callable[[], Awaitable[AlertRow]]) -> Alert:
        try:
            async with db.begin():
                row = await action()
                alert = store.to_alert(row)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except Conflict as exc:
            raise HTTPException(409, str(exc)) from None
        service.changed([alert])
        return alert

    bad_json: dict[int | str, dict[str, Any]] = {400: {"description": "Body is not valid JSON"}}
    conflict: dict[int | str, dict[str, Any]] = {
        **NOT_FOUND,
        **bad_json,
        409: {"description": "Alert is resolved"},
    }

    @router.post(
        "/alerts/{alert_id}/acknowledge", response_model=Alert, tags=["actions"], responses=conflict
    )
    async def acknowledge(
        alert_id: str,
        db: WriteSession,
        body: Annotated[AcknowledgeRequest | None, Body()] = None,
        viewer: Viewer = writer,
    ) -> Alert:
        note = body.note if body else None
        return await _act(db, lambda: store.acknowledge(db, alert_id, viewer, note))

    @router.post(
        "/alerts/{alert_id}/snooze", response_model=Alert, tags=["actions"], responses=conflict
    )
    async def snooze(
        alert_id: str, body: SnoozeRequest, db: WriteSession, viewer: Viewer = writer
    ) -> Alert:
        if body.until <= utcnow():
            raise _bad_request("until", "body", "must be in the future")
        return await _act(db, lambda: store.snooze(db, alert_id, viewer, body.until, body.note))

    @router.post(
        "/alerts/{alert_id}/resolve", response_model=Alert, tags=["actions"], responses=conflict
    )
    async def resolve(
        alert_id: str, body: ResolveRequest, db: WriteSession, viewer: Viewer = writer
    ) -> Alert:
        return await _act(db, lambda: store.resolve(db, alert_id, viewer, body.note))

    @router.post(
        "/alerts/{alert_id}/assign",
        response_model=Alert,
        tags=["actions"],
        responses={**NOT_FOUND, **bad_json, 422: {"description": "csm is not a known CSM"}},
    )
    async def assign(
        alert_id: str, body: AssignRequest, db: WriteSession, viewer: Viewer = writer
    ) -> Alert:
        if body.csm not in service.known_csms:
            # Checked after the alert: another CSM's alert stays a 404, not a 422 oracle.
            await _visible_or_404(db, alert_id, viewer)
            raise _bad_request(
                "csm", "body", "not a known CSM (routing config owners, teams, `csms`, key CSMs)"
            )
        return await _act(db, lambda: store.assign(db, alert_id, viewer, body.csm))

    @router.get(
        "/alerts/{alert_id}/audit", response_model=AuditLog, tags=["alerts"], responses=NOT_FOUND
    )
    async def audit(alert_id: str, db: Session, viewer: Viewer = reader) -> AuditLog:
        try:
            return AuditLog(items=await store.audit_log(db, alert_id, viewer))
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @router.get("/accounts", response_model=AccountList, tags=["accounts"])
    async def list_accounts(
        db: Session,
        viewer: Viewer = reader,
        at_risk: Annotated[bool, Query(description="only accounts with unresolved alerts")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        sort: Annotated[
            AccountSort,
            Query(
                description="risk (band, score, MRR at risk), score, mrr_at_risk, "
                "renewal, last_change"
            ),
        ] = AccountSort.RISK,
    ) -> AccountList:
        items = await store.list_accounts(
            db,
            viewer,
            at_risk,
            limit,
            settings.alerts_history_points,
            sort=sort.value,
            bands=settings.bands,
        )
        return AccountList(items=items)

    @router.get(
        "/accounts/{account_id}", response_model=Account, tags=["accounts"], responses=NOT_FOUND
    )
    async def get_account(account_id: str, db: Session, viewer: Viewer = reader) -> Account:
        try:
            return await store.get_account(db, account_id, viewer, settings.alerts_history_points)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @router.get("/deliveries", response_model=DeliveryPage, tags=["operations"])
    async def deliveries(
        db: Session,
        _viewer: Viewer = admin,
        state: Annotated[DeliveryState | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Query(max_length=64)] = None,
    ) -> DeliveryPage:
        try:
            items, next_cursor = await store.list_deliveries(
                db, state.value if state else None, limit, cursor
            )
        except ValueError as exc:
            raise _bad_request("cursor", "query", str(exc)) from None
        return DeliveryPage(items=items, next_cursor=next_cursor)

    @router.get(
        "/stream",
        tags=["alerts"],
        summary="Server-Sent Events: `event: alert`, data = Alert JSON",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        request: Request, viewer: Viewer = Depends(require_stream(settings))
    ) -> StreamingResponse:
        subscription = service.broadcaster.subscribe(viewer.owners)
        keepalive = settings.alerts_stream_keepalive

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while not subscription.overflowed:
                    try:
                        event_id, alert = await asyncio.wait_for(
                            subscription.queue.get(), keepalive
                        )
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keep-alive\n\n"
                        continue
                    data = alert.model_dump_json()
                    yield f"event: alert\nid: {event_id}\ndata: {data}\n\n".encode()
            finally:
                service.broadcaster.unsubscribe(subscription)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
