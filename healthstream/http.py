"""Probe and metrics endpoints every HTTP service mounts the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
#: Background task name -> last error, for every task whose failure persists.
LivenessCheck = Callable[[], dict[str, str]]


def probes_router(
    readiness: ReadinessCheck,
    registry: CollectorRegistry = REGISTRY,
    liveness: LivenessCheck | None = None,
) -> APIRouter:
    """``/healthz`` (process alive), ``/readyz`` (dependencies reachable), ``/metrics``.

    ``liveness`` is a :meth:`healthstream.supervisor.Supervisor.errors`: a
    background task that keeps failing makes ``/healthz`` answer 503, so the
    orchestrator restarts a process that would otherwise look alive doing nothing.
    """
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz",
        summary="Liveness: the process is up and its background tasks work",
        responses={503: {"description": "A background task keeps failing"}},
        response_model=None,
    )
    async def healthz() -> dict[str, str] | JSONResponse:
        failing = liveness() if liveness is not None else {}
        if failing:
            return JSONResponse({"status": "failing", "tasks": failing}, status_code=503)
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers",
        responses={503: {"description": "A dependency is unreachable"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
