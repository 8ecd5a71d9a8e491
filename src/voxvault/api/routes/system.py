"""Health, readiness and metrics (the voice list lives in routes/voices.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from voxvault.api.deps import MetricsDep

router = APIRouter()


@router.get("/healthz", tags=["system"])
def healthz() -> dict[str, str]:
    """The process is up (engines may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz", tags=["system"])
def readyz(request: Request) -> JSONResponse:
    """Ready to serve speech: engines loaded and warmed up."""
    state = request.app.state
    if state.ready.is_set():
        return JSONResponse({"status": "ready"})
    if state.warmup_error:
        return JSONResponse({"status": "failed", "error": state.warmup_error}, status_code=503)
    return JSONResponse({"status": "loading"}, status_code=503)


@router.get("/metrics", tags=["system"])
def metrics(server_metrics: MetricsDep) -> Response:
    return Response(generate_latest(server_metrics.registry), media_type=CONTENT_TYPE_LATEST)
