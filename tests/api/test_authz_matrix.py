"""Every route × every scope × another tenant: no access outside scope, nothing across tenants.

The route list comes from the app's routes, so routes added later are covered without editing this file.
Each non-public route must declare its scope: a ``require(scope)`` dependency, or (WebSockets, which
authenticate inside so refusals can close with a code) a ``required_scope`` attribute on the endpoint.
Real rows, no mocks: tenant A gets a voice, a consent, a job, a generation and keys; tenant B's admin
then tries to reach them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route
from starlette.websockets import WebSocketDisconnect

from voxvault.api.deps import required_scope
from voxvault.governance.keys import SCOPES
from voxvault.store.models import ApiKey, Consent, Generation, Job, Voice, utcnow

PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/favicon.ico",
}
BODY_METHODS = {"POST", "PUT", "PATCH"}
AUTH_CODES = {
    "missing_api_key",
    "invalid_api_key",
    "api_key_revoked",
    "api_key_expired",
    "insufficient_scope",
}


@dataclass(frozen=True)
class Endpoint:
    method: str  # HTTP method, or "WS"
    path: str
    scope: str | None  # None: public


def _dependency_scopes(dependant: Any) -> list[str]:
    found = []
    for dep in getattr(dependant, "dependencies", ()):
        scope = required_scope(dep.call)
        if scope:
            found.append(scope)
        found += _dependency_scopes(dep)
    return found


def _endpoints(app: Any) -> tuple[list[Endpoint], list[str]]:
    """Every endpoint with its scope, and a list of declaration problems."""
    endpoints, problems = [], []
    for rc in iter_route_contexts(app.routes):
        route, path = rc.original_route, rc.path
        if isinstance(route, Mount):
            continue  # static web assets (the UI's files): no data behind them
        if isinstance(route, APIRoute | APIWebSocketRoute):
            scopes = _dependency_scopes(getattr(rc, "dependant", None))
            declared = required_scope(rc.endpoint)
            if declared:
                scopes.append(declared)
            if len(set(scopes)) > 1:
                problems.append(f"{path} demands several scopes: {scopes}")
            scope = scopes[0] if scopes else None
            if scope is None and path not in PUBLIC:
                problems.append(f"{path} has no require(scope)")
            if scope is not None and scope not in SCOPES:
                problems.append(f"{path} demands unknown scope {scope}")
            methods = ["WS"] if isinstance(route, APIWebSocketRoute) else sorted(rc.methods or ())
            endpoints += [Endpoint(m, path, scope if path not in PUBLIC else None) for m in methods]
        elif isinstance(route, Route):
            if path not in PUBLIC:
                problems.append(f"plain route {path} is outside the public list")
        else:
            problems.append(f"unrecognised route {route!r} at {path}")
    return endpoints, problems


def _protected(app: Any) -> list[Endpoint]:
    return [e for e in _endpoints(app)[0] if e.scope is not None]


def test_every_non_public_route_declares_one_known_scope(app: Any) -> None:
    endpoints, problems = _endpoints(app)
    assert not problems, problems
    paths = {e.path for e in endpoints}
    # The list really is the app's: known routes are in it (a silent empty list would pass everything).
    assert {"/v1/audio/speech", "/v1/keys", "/v1/keys/{key_id}", "/v1/audit", "/v1/audit/verify"} <= paths
    assert {e.scope for e in endpoints if e.path == "/v1/keys"} == {"admin"}


@dataclass
class World:
    org_a: str
    project_a: str
    a_keys: dict[str, str]  # scope -> secret of a key with exactly that one scope
    a_spare_key_id: str
    b_admin: str
    a_ids: dict[str, str]  # kind -> id of a tenant-A object


@pytest.fixture(scope="module")
def world(vv: Any) -> World:
    org_a, project_a = vv.keys.create_org_project("tenant a")
    org_b, project_b = vv.keys.create_org_project("tenant b")
    a_keys = {
        s: vv.keys.create(org_id=org_a, project_id=project_a, scopes=[s], name=f"only {s}").secret
        for s in SCOPES
    }
    a_admin_id = vv.keys.authenticate(a_keys["admin"]).key_id
    spare = vv.keys.create(org_id=org_a, project_id=project_a, scopes=["voices:read"], name="spare")
    b_admin = vv.keys.create(org_id=org_b, project_id=project_b, scopes=["admin"], name="b admin").secret
    with vv.db.session() as s:
        consent = Consent(
            project_id=project_a,
            speaker_name="Ada A",
            purpose="tests",
            organization_name="A Ltd",
            script="I consent",
            challenge_hash="0" * 64,
            challenge_expires_at=utcnow(),
            status="verified",
        )
        s.add(consent)
        s.flush()
        voice = Voice(
            project_id=project_a,
            name="ada",
            kind="cloned",
            status="active",
            engine="kokoro",
            consent_id=consent.id,
        )
        job = Job(kind="batch", project_id=project_a, key_id=a_admin_id)
        s.add_all([voice, job])
        s.flush()
        gen = Generation(
            voice_id=voice.id,
            key_id=a_admin_id,
            text_sha256="1" * 64,
            text_chars=3,
            format="mp3",
            duration_s=1.0,
            latency_ms=10.0,
        )
        s.add(gen)
        s.flush()
        ids = {
            "voice": voice.id,
            "consent": consent.id,
            "job": job.id,
            "batch": job.id,
            "generation": gen.id,
            "key": spare.id,
            "project": project_a,
            "org": org_a,
        }
    return World(org_a, project_a, a_keys, spare.id, b_admin, ids)


def _fill(path: str, ids: dict[str, str] | None) -> str:
    """Put tenant A's ids (matched by parameter name) or fresh random ids into the path."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[0].lower()
        for kind, ident in (ids or {}).items():
            if kind in name:
                return ident
        return str(uuid.uuid4())

    return re.sub(r"\{([^}]+)\}", value, path)


def _minimal_body(spec: dict[str, Any], method: str, path: str) -> Any:
    """The smallest JSON body the OpenAPI schema accepts (required fields only), or {}."""
    op = spec["paths"].get(path, {}).get(method.lower(), {})
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if not schema:
        return {}

    def build(s: dict[str, Any]) -> Any:
        if "$ref" in s:
            return build(spec["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]])
        for combo in ("anyOf", "oneOf", "allOf"):
            if combo in s:
                return build(next((x for x in s[combo] if x.get("type") != "null"), s[combo][0]))
        if "enum" in s:
            return s["enum"][0]
        kind = s.get("type")
        if kind == "object" or "properties" in s:
            return {
                k: build(s["properties"][k]) for k in s.get("required", []) if k in s.get("properties", {})
            }
        return {"string": "Hi.", "integer": 1, "number": 1.0, "boolean": False, "array": []}.get(kind)

    return build(schema)


def _call(client: TestClient, e: Endpoint, path: str, body: Any = None) -> tuple[int, str, str]:
    """(status, error code, text): for WebSockets the status is a WS close code or 200 for data."""
    if e.method == "WS":
        try:
            with client.websocket_connect(path) as ws:
                ws.send_text(json.dumps({"text": " ", "voice_settings": {}}))
                message = ws.receive()
                text = message.get("text") or ""
                if message.get("type") == "websocket.close":
                    return int(message.get("code", 1000)), str(message.get("reason", "")), text
                code = _error_code(text)
                if not code:
                    return 200, "", text  # audio or a normal message: the session started
                closing = ws.receive()  # the close frame that follows the error message
                return int(closing.get("code", 1000)), code, text
        except WebSocketDisconnect as exc:
            return exc.code, str(exc.reason or ""), ""
    kwargs: dict[str, Any] = {"json": body if body is not None else {}} if e.method in BODY_METHODS else {}
    r = client.request(e.method, path, **kwargs)
    return r.status_code, _error_code(r.text), r.text


def _error_code(text: str) -> str:
    try:
        body = json.loads(text) if text else None
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


@pytest.fixture(scope="module")
def clients(app: Any, world: World) -> dict[str, TestClient]:
    def client(headers: dict[str, str] | None = None) -> TestClient:
        return TestClient(app, headers=headers, raise_server_exceptions=False)

    made = {s: client({"Authorization": f"Bearer {k}"}) for s, k in world.a_keys.items()}
    made["none"] = client()
    made["bogus"] = client({"Authorization": "Bearer vv_00000000_not-a-real-key-at-all"})
    made["b_admin"] = client({"xi-api-key": world.b_admin})
    return made


def _tts_available(vv: Any) -> bool:
    try:
        vv.catalog  # noqa: B018 - resolving any voice needs the TTS engine's preset styles
    except Exception:  # noqa: BLE001
        return False
    return True


def test_without_a_valid_key_every_protected_route_refuses(app: Any, clients: dict[str, TestClient]) -> None:
    wrong = []
    for e in _protected(app):
        for who in ("none", "bogus"):
            status, code, _ = _call(clients[who], e, _fill(e.path, None))
            expected = 1008 if e.method == "WS" else 401
            if status != expected or code not in {"missing_api_key", "invalid_api_key"}:
                wrong.append(f"{who}: {e.method} {e.path} -> {status} {code}")
    assert not wrong, wrong


@pytest.mark.parametrize("scope", SCOPES)
def test_each_scope_opens_exactly_its_routes(
    app: Any, vv: Any, clients: dict[str, TestClient], scope: str
) -> None:
    engine = _tts_available(vv)
    wrong = []
    for e in _protected(app):
        status, code, text = _call(clients[scope], e, _fill(e.path, None))
        allowed = scope in (e.scope, "admin")
        if allowed and (status in (401, 403) or code in AUTH_CODES):
            wrong.append(f"{e.method} {e.path}: {scope} key refused ({status} {code})")
        if not allowed and (code != "insufficient_scope" or status not in (403, 1008)):
            wrong.append(f"{e.method} {e.path}: {scope} key not refused ({status} {code})")
        if e.method != "WS" and status >= 500 and engine:  # without the TTS engine voice lookups fail
            wrong.append(f"{e.method} {e.path}: {status} {text[:200]}")
    assert not wrong, wrong


def test_another_tenants_admin_reaches_nothing_of_tenant_a(
    app: Any, vv: Any, clients: dict[str, TestClient], world: World
) -> None:
    b = clients["b_admin"]
    spec = b.get("/openapi.json").json()
    engine = _tts_available(vv)
    a_ids = set(world.a_ids.values())
    wrong = []
    for e in _protected(app):
        has_params = "{" in e.path
        body = _minimal_body(spec, e.method, e.path) if has_params else {}
        path = _fill(e.path, world.a_ids)
        status, code, text = _call(b, e, path, body)
        leaked = [i for i in a_ids if i in text and i not in path]  # echoing the id asked about is fine
        if leaked:
            wrong.append(f"{e.method} {e.path}: response names tenant A's {leaked}")
        server_error = status == 1011 if e.method == "WS" else status >= 500  # WS close codes are >= 1000
        if server_error and engine:
            wrong.append(f"{e.method} {e.path}: {status} {text[:200]}")
        if server_error and not engine:
            continue  # voice lookup needs the TTS engine; without it the route cannot be judged
        if not has_params:
            continue
        if e.method == "WS":
            if status == 200 or (status == 1008 and code in AUTH_CODES):
                wrong.append(f"WS {e.path} with A's ids: {status} {code}")
        elif status not in ({404} if e.method not in BODY_METHODS else {404, 422}):
            wrong.append(f"{e.method} {e.path} with A's ids: {status} {text[:160]}")
    assert not wrong, wrong
    with vv.db.session() as s:  # nothing of A's changed
        assert s.get(Voice, world.a_ids["voice"]).status == "active"
        assert s.get(Consent, world.a_ids["consent"]).status == "verified"
        assert s.get(ApiKey, world.a_spare_key_id).revoked_at is None
    assert vv.keys.authenticate(world.a_keys["admin"]).org_id == world.org_a


def test_own_admin_can_act_on_its_own_key(clients: dict[str, TestClient], world: World) -> None:
    """Positive control for the isolation test: the same request from A's admin is not a 404."""
    spare = clients["admin"].delete(f"/v1/keys/{world.a_spare_key_id}")
    assert spare.status_code == 200 and spare.json()["state"] == "revoked"


def test_voice_limited_key_is_refused_other_voices(app: Any, vv: Any, world: World) -> None:
    limited = vv.keys.create(
        org_id=world.org_a,
        project_id=world.project_a,
        scopes=["speech:create"],
        voice_ids=[world.a_ids["voice"]],
    ).secret
    client = TestClient(app, headers={"Authorization": f"Bearer {limited}"})
    if not _tts_available(vv):
        pytest.skip("TTS engine unavailable")
    r = client.post("/v1/audio/speech", json={"input": "Hello.", "voice": "alpha", "response_format": "pcm"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "voice_not_allowed"
    entry = list(vv.audit.entries())[-1]
    assert (entry["action"], entry["details"]["reason"]) == ("access.denied", "voice_not_allowed")
