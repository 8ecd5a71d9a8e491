"""Declare in ``/openapi.json`` the error responses routes really answer, once for the whole app.

Every refusal is ``{"error": {"code", "message", "type"}}`` (api/errors.py), but FastAPI only documents
200 and its own 422 shape, which the app never sends (audit finding 9). Rather than a ``responses=`` on
each route, the generated document is completed from what each route is, by the same rules the code
follows:

* every operation: 400 (malformed JSON, undecodable text, bad parameters);
* with parameters or a body: 422 (a missing or invalid field), in the error shape instead of FastAPI's;
* behind an API key (``require(scope)``): 401 (no, unknown, revoked or expired key), 403 (scope, voice);
* behind a key with a path parameter, a body or an ``*_id`` query parameter: 404 (ids of other tenants
  answer 404 too);
* behind a key and changing state (POST, PUT, PATCH, DELETE): 409 (a conflict with the current state);
* with a body: 413 (text, audio or upload over its limit);
* with an upload body (multipart or raw bytes): 415 (a file that is not the audio or items it should be);
* speaking or transcribing (``speech:*`` scopes, POST or a ``{voice_id}`` route): 429 (rate limits, a
  busy server).

A route's own ``responses=`` entry for a code wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field

from voxvault.api.deps import required_scope

__all__ = ["ErrorResponse", "error_codes_for", "install_error_responses"]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. input_too_long.")
    message: str = Field(description="What went wrong, for people.")
    type: str = Field(description="OpenAI's error type, e.g. invalid_request_error.")
    details: dict[str, Any] | None = Field(default=None, description="More about some errors.")


class ErrorResponse(BaseModel):
    """What every 4xx (and the bare 500) answers."""

    error: ErrorBody


DESCRIPTIONS = {
    400: "Malformed JSON, text that is not valid Unicode (invalid_text) or a bad parameter.",
    401: "No API key, or an unknown, revoked or expired one.",
    403: "The key lacks the route's scope, or may not use this voice.",
    404: "No such resource in the caller's project (other tenants' ids answer 404 too).",
    409: "Conflicts with the current state (e.g. last_admin_key, key_exists).",
    413: "Over a size limit (input_too_long, audio_too_long, too_many_breaks, upload_too_large).",
    415: "The upload is not a supported file (invalid_audio, unsupported_media_type).",
    422: "A missing or invalid field.",
    429: "Rate limited (Retry-After) or the server is busy.",
}
_CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def _scopes(dependant: Any) -> Iterable[str]:
    for dep in getattr(dependant, "dependencies", ()):
        scope = required_scope(dep.call)
        if scope is not None:
            yield scope
        yield from _scopes(dep)


def _upload(route: Any) -> bool:
    body = (route.openapi_extra or {}).get("requestBody", {})
    content = body.get("content", {}) if isinstance(body, dict) else {}
    return any(not t.endswith("json") for t in content) or any(
        str(getattr(f.field_info, "media_type", None) or "").startswith("multipart")
        for f in route.dependant.body_params
    )


def error_codes_for(route: Any, method: str) -> list[int]:
    """The error statuses ``method`` on ``route`` (an APIRoute or its RouteContext) can answer, by the
    rules in the module docstring."""
    own = required_scope(route.endpoint)
    scopes = set(_scopes(route.dependant)) | ({own} if own else set())
    has_body = bool(route.dependant.body_params) or "requestBody" in (route.openapi_extra or {})
    has_params = has_body or bool(
        route.dependant.path_params or route.dependant.query_params or route.dependant.header_params
    )
    codes = {400}
    if has_params:
        codes.add(422)
    if scopes:
        codes |= {401, 403}
        names_an_id = any(p.name.endswith("_id") for p in route.dependant.query_params)
        if route.dependant.path_params or has_body or names_an_id:
            codes.add(404)
        if method in _CHANGES:
            codes.add(409)
        speaks = method == "POST" or "voice_id" in {p.name for p in route.dependant.path_params}
        if speaks and any(s.startswith("speech:") for s in scopes):
            codes.add(429)
    if has_body and method in _CHANGES:
        codes.add(413)
        if _upload(route):
            codes.add(415)
    return sorted(codes)


def install_error_responses(app: FastAPI) -> None:
    """Complete ``app.openapi()`` with the error responses; call after every router is included."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            _declare(schema, app)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare(schema: dict[str, Any], app: FastAPI) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    model = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(model.pop("$defs", {}))
    components["ErrorResponse"] = model
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        operations = schema.get("paths", {}).get(route.path_format or "", {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            own = set(route.responses or {})
            for code in error_codes_for(route, method):
                if code in own or str(code) in own:
                    continue
                responses[str(code)] = {"description": DESCRIPTIONS[code], "content": ref}
