"""Authentication and authorisation for every route: ``Depends(require("speech:create"))``.

Keys come as ``Authorization: Bearer <key>`` (OpenAI clients) or ``xi-api-key: <key>`` (ElevenLabs
clients). Each route names the one scope it needs; the returned ``Principal`` carries the tenant so the
route only ever touches that project's rows.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from voxvault.errors import VoxError
from voxvault.governance.keys import Principal


def _secret(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("xi-api-key") or request.headers.get("x-api-key")


def require(scope: str) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        secret = _secret(request)
        if not secret:
            raise VoxError("missing_api_key", "send an API key as 'Authorization: Bearer <key>'", 401)
        vv = request.app.state.vv
        principal: Principal = vv.keys.authenticate(secret)
        request.state.principal = principal
        if not principal.has(scope):
            vv.audit.record(
                "access.denied", actor=principal.key_id, target=request.url.path, details={"scope": scope}
            )
            raise VoxError("insufficient_scope", f"this API key lacks the '{scope}' scope", 403)
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
