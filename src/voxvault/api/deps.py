"""Authentication and authorisation for every route: ``Depends(require("speech:create"))``.

Keys come as ``Authorization: Bearer <key>`` (OpenAI clients) or ``xi-api-key: <key>`` (ElevenLabs
clients). Each route names the one scope it needs; the returned ``Principal`` carries the tenant, so the
route only ever touches that project's rows. A route without such a dependency is public; the
authorisation test suite fails when a non-public route lacks one.

Refusals of a known key (wrong scope, revoked, expired) are audited with the key as actor. Requests with
no key or an unknown key are not: anyone can send those, and they would fill the append-only log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from voxvault.errors import VoxError
from voxvault.governance.keys import SCOPES, Principal

# Declared (auto_error=False) only so OpenAPI documents both ways to authenticate.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_xi_api_key = APIKeyHeader(name="xi-api-key", auto_error=False, description="ElevenLabs-style key header")


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
    secret = _secret(request)
    if not secret:
        raise VoxError("missing_api_key", "send an API key as 'Authorization: Bearer <key>'", 401)
    if len(secret) > 256:
        raise VoxError("invalid_api_key", "the API key is not valid", 401)
    principal: Principal = request.app.state.vv.keys.authenticate(secret)
    request.state.principal = principal
    return principal


def require(scope: str) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and demands ``scope`` (``admin`` implies every scope)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def dependency(
        request: Request,
        _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
        _xi_key: Annotated[str | None, Depends(_xi_api_key)] = None,
    ) -> Principal:
        principal = authenticate(request)
        if not principal.has(scope):
            route = request.scope.get("route")
            request.app.state.vv.audit.record(
                "access.denied",
                actor=principal.key_id,
                target=getattr(route, "path", request.url.path)[:200],
                details={"reason": "insufficient_scope", "scope": scope, "method": request.method},
            )
            raise VoxError("insufficient_scope", f"this API key lacks the '{scope}' scope", 403)
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    dependency.required_scope = scope  # type: ignore[attr-defined]
    return dependency


def required_scope(dependency: Any) -> str | None:
    """The scope a ``require(...)`` dependency demands (None for other callables)."""
    return getattr(dependency, "required_scope", None)
