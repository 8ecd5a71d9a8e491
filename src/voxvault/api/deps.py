"""What a route may ask for, typed: the service, its settings, the caller's principal, the server's gates.

Routes declare ``vv: VoxVaultDep`` or ``principal: SpeechCreator`` (``Annotated`` aliases, as speaches'
``dependencies.py`` does) and never reach into ``app.state``: this module is the one place that does, so
a test can swap what ``create_app`` stored and every route sees it.

Keys come as ``Authorization: Bearer <key>`` (OpenAI clients) or ``xi-api-key: <key>`` (ElevenLabs
clients). Each route names the one scope it needs; the returned ``Principal`` carries the tenant, so the
route only ever touches that project's rows. A route without such a dependency is public; the
authorisation test suite fails when a non-public route lacks one. The WebSocket routes authenticate
inside (a refusal closes the socket with a code instead of failing the handshake) through the same
:func:`check_key` and :func:`demand_scope`.

Refusals of a known key (wrong scope, revoked, expired) are audited with the key as actor. Requests with
no key or an unknown key are not: anyone can send those, and they would fill the append-only log.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from voxvault.api.metrics import Metrics
from voxvault.api.speech_stream import SpeechStreams
from voxvault.api.transcription_gate import TranscriptionGate
from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.governance.keys import SCOPES, Principal
from voxvault.jobs.adapt import AdaptService
from voxvault.jobs.service import BatchService
from voxvault.service import VoxVault
from voxvault.synthesis.admission import Admission

# Declared (auto_error=False) only so OpenAPI documents both ways to authenticate.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_xi_api_key = APIKeyHeader(name="xi-api-key", auto_error=False, description="ElevenLabs-style key header")

MAX_SECRET_CHARS = 256
HTTP_KEY_HOWTO = "send an API key as 'Authorization: Bearer <key>'"


# ------------------------------------------------------------------------------------------- server state
def get_vv(conn: HTTPConnection) -> VoxVault:
    vv: VoxVault = conn.app.state.vv
    return vv


def get_settings(conn: HTTPConnection) -> Settings:
    return get_vv(conn).settings


def get_metrics(conn: HTTPConnection) -> Metrics:
    metrics: Metrics = conn.app.state.metrics
    return metrics


def get_admission(conn: HTTPConnection) -> Admission:
    """Read per request: a test may put a smaller one in place."""
    admission: Admission = conn.app.state.admission
    return admission


def get_speech_streams(conn: HTTPConnection) -> SpeechStreams:
    return SpeechStreams(get_vv(conn), get_admission(conn), get_metrics(conn))


def get_send_timeout(conn: HTTPConnection) -> float:
    """Seconds one send to a slow client may take (``app.state.send_timeout_s``, which tests lower)."""
    return float(getattr(conn.app.state, "send_timeout_s", get_settings(conn).stream_send_timeout_s))


def get_transcription_gate(conn: HTTPConnection) -> TranscriptionGate:
    """The app's one gate for transcriptions (HTTP and WebSocket), made on first use."""
    state = conn.app.state
    gate: TranscriptionGate | None = getattr(state, "transcription_gate", None)
    if gate is None:
        settings = get_settings(conn)
        gate = TranscriptionGate(settings.max_concurrent_transcriptions, settings.queue_size)
        state.transcription_gate = gate
    return gate


_batch_lock = threading.Lock()
_adapt_lock = threading.Lock()


def batch_service(app: Any) -> BatchService:
    """The app's batch service, started on first use (normally at app start, by the batches router)."""
    with _batch_lock:
        service: BatchService | None = getattr(app.state, "batches", None)
        if service is None:
            service = BatchService(app.state.vv)
            service.start()
            app.state.batches = service
        return service


def adapt_service(app: Any) -> AdaptService:
    """The app's fine-tuning job runner, made on first use (normally at app start, by the adapt router)."""
    with _adapt_lock:
        service: AdaptService | None = getattr(app.state, "adapt", None)
        if service is None:
            service = AdaptService(app.state.vv)
            app.state.adapt = service
        return service


def get_batch_service(conn: HTTPConnection) -> BatchService:
    return batch_service(conn.app)


def get_adapt_service(conn: HTTPConnection) -> AdaptService:
    return adapt_service(conn.app)


VoxVaultDep = Annotated[VoxVault, Depends(get_vv)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
SendTimeoutDep = Annotated[float, Depends(get_send_timeout)]
SpeechStreamsDep = Annotated[SpeechStreams, Depends(get_speech_streams)]
TranscriptionGateDep = Annotated[TranscriptionGate, Depends(get_transcription_gate)]
BatchServiceDep = Annotated[BatchService, Depends(get_batch_service)]
AdaptServiceDep = Annotated[AdaptService, Depends(get_adapt_service)]


# ------------------------------------------------------------------------------------------- keys
def check_key(vv: VoxVault, secret: str | None, howto: str = HTTP_KEY_HOWTO) -> Principal:
    """The principal of ``secret``, or 401 (``howto`` tells a caller without a key where to put one)."""
    if not secret:
        raise VoxError("missing_api_key", howto, 401)
    if len(secret) > MAX_SECRET_CHARS:
        raise VoxError("invalid_api_key", "the API key is not valid", 401)
    principal: Principal = vv.keys.authenticate(secret)
    return principal


def demand_scope(vv: VoxVault, principal: Principal, scope: str, *, target: str, method: str) -> Principal:
    """``principal`` if it holds ``scope`` (``admin`` implies every scope); else audited and 403."""
    if not principal.has(scope):
        vv.audit.record(
            "access.denied",
            actor=principal.key_id,
            target=target[:200],
            details={"reason": "insufficient_scope", "scope": scope, "method": method},
        )
        raise VoxError("insufficient_scope", f"this API key lacks the '{scope}' scope", 403)
    return principal


def bearer(value: str | None) -> str | None:
    """A key from a header or query value, with or without its ``Bearer`` prefix."""
    if not value:
        return None
    value = value.strip()
    return (value[7:].strip() if value[:7].lower() == "bearer " else value) or None


def _secret(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return (request.headers.get("xi-api-key") or request.headers.get("x-api-key") or "").strip() or None


def authenticate(request: Request) -> Principal:
    """The caller's principal (cached on the request), or 401."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal = check_key(get_vv(request), _secret(request))
    request.state.principal = principal
    return principal


@functools.cache
def require(scope: str) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and demands ``scope`` (``admin`` implies every scope).

    Cached: every route that needs a scope shares one dependency, which FastAPI then runs once a request.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(
        request: Request,
        _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
        _xi_key: Annotated[str | None, Depends(_xi_api_key)] = None,
    ) -> Principal:
        route = request.scope.get("route")
        return demand_scope(
            get_vv(request),
            authenticate(request),
            scope,
            target=getattr(route, "path", request.url.path),
            method=request.method,
        )

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency


def required_scope(dependency: Any) -> str | None:
    """The scope a ``require(...)`` dependency demands (None for other callables)."""
    return getattr(dependency, "required_scope", None)


VoicesReader = Annotated[Principal, Depends(require("voices:read"))]
VoicesWriter = Annotated[Principal, Depends(require("voices:write"))]
ConsentManager = Annotated[Principal, Depends(require("consent:manage"))]
SpeechCreator = Annotated[Principal, Depends(require("speech:create"))]
Transcriber = Annotated[Principal, Depends(require("speech:transcribe"))]
AuditReader = Annotated[Principal, Depends(require("audit:read"))]
Admin = Annotated[Principal, Depends(require("admin"))]
