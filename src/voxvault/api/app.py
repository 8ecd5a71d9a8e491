"""The FastAPI application factory: ``create_app(settings)``.

Engines warm up in a background thread at start, so ``/healthz`` answers at once and ``/readyz`` turns
ready when the first synthesis would be fast.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from voxvault.api.docs import install_docs
from voxvault.api.errors import install_error_handlers
from voxvault.api.metrics import Metrics
from voxvault.api.openapi_errors import install_error_responses
from voxvault.api.routes import adapt as adapt_routes
from voxvault.api.routes import audit as audit_routes
from voxvault.api.routes import batches as batch_routes
from voxvault.api.routes import consents as consent_routes
from voxvault.api.routes import custom_voices, elevenlabs, elevenlabs_voices, models, speech, system
from voxvault.api.routes import keys as key_routes
from voxvault.api.routes import tenants as tenant_routes
from voxvault.api.routes import transcription as transcription_routes
from voxvault.api.routes import transcription_batches as transcription_batch_routes
from voxvault.api.routes import transcription_ws as transcription_ws_routes
from voxvault.api.routes import voices as voice_routes
from voxvault.api.routes import watermark as watermark_routes
from voxvault.api.streaming import SendTimeoutMiddleware
from voxvault.api.text_guard import install_text_guard
from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.governance.redaction import install_log_redaction
from voxvault.service import VoxVault
from voxvault.synthesis.admission import Admission
from voxvault.synthesis.pipeline import FIRST_PIECE_PHONEMES
from voxvault.web import routes as web_routes

log = logging.getLogger(__name__)


def _warm_up(app: FastAPI) -> None:
    t0 = time.perf_counter()
    try:
        app.state.vv.warm_up()
        app.state.ready.set()
        log.info("engines ready in %.2fs", time.perf_counter() - t0)
    except VoxError as exc:  # a known cause (a missing extra, a bad setting): its one line, no traceback
        app.state.warmup_error = exc.code
        log.error("warm-up failed: [%s] %s", exc.code, exc.message)
    except Exception as exc:  # noqa: BLE001 - reported through /readyz
        app.state.warmup_error = f"{type(exc).__name__}"
        log.exception("warm-up failed")


def create_app(settings: Settings | None = None, vv: VoxVault | None = None, warm_up: bool = True) -> FastAPI:
    install_log_redaction()  # API keys never reach a log line, not even uvicorn's access log
    vv = vv or VoxVault(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warning := vv.key_location.warning:
            log.warning("%s", warning)  # once per server start, not on every CLI command
        if warm_up:
            threading.Thread(target=_warm_up, args=(app,), name="voxvault-warmup", daemon=True).start()
        else:
            app.state.ready.set()
        vv.engines.start_reaper()  # idle engines (not the default TTS) unloaded after engine_idle_ttl_s
        try:
            yield
        finally:
            vv.engines.stop_reaper()

    app = FastAPI(
        title="voxvault",
        version="0.1.0",
        description="Consent-first voice cloning: OpenAI-compatible speech, consent-verified voices.",
        lifespan=lifespan,
        docs_url=None,  # install_docs: the same pages with their assets served from here, not a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.vv = vv
    app.state.metrics = Metrics()
    app.state.metrics.watch_engines(vv.engines)
    app.state.admission = Admission(
        vv.settings.max_concurrent_syntheses,
        vv.settings.queue_size,
        # reserve() runs after prepare, so the pipeline is loaded by then
        expected_wait=lambda starting: vv.pipeline.scheduler.expected_wait_s(starting * FIRST_PIECE_PHONEMES),
        max_first_audio_s=vv.settings.max_first_audio_s,
    )
    app.state.send_timeout_s = vv.settings.stream_send_timeout_s
    app.state.ready = threading.Event()
    app.state.warmup_error = None
    install_error_handlers(app)
    install_text_guard(app)  # lone surrogates and NULs in any JSON body: 400 invalid_text

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        app.state.metrics.request_seconds.labels(
            method=request.method, route=template, status=str(response.status_code)
        ).observe(time.perf_counter() - t0)
        response.headers["x-request-id"] = request.state.request_id
        return response

    app.add_middleware(SendTimeoutMiddleware, default_timeout_s=vv.settings.stream_send_timeout_s)
    app.include_router(system.router)
    app.include_router(speech.router)
    app.include_router(elevenlabs.router)
    app.include_router(elevenlabs_voices.router)
    app.include_router(models.router)
    app.include_router(custom_voices.router)
    app.include_router(key_routes.router)
    app.include_router(tenant_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(batch_routes.router)
    app.include_router(adapt_routes.router)
    app.include_router(voice_routes.router)
    app.include_router(consent_routes.router)
    app.include_router(watermark_routes.router)
    app.include_router(transcription_routes.router)
    app.include_router(transcription_batch_routes.router)
    app.include_router(transcription_ws_routes.router)
    app.include_router(web_routes.router)
    app.mount("/static", web_routes.static_app(), name="static")
    install_error_responses(app)  # after every router: /openapi.json declares each route's 4xx
    return app
