"""The API's rooms stay apart: routes reach the server only through api.deps' typed dependencies, no route
module imports another, and every way in (HTTP, both ElevenLabs sockets, the transcription socket) runs
the one key check and writes the same refusal entry."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import voxvault.api
from voxvault.api.transcription_gate import TranscriptionGate

API = Path(voxvault.api.__file__).parent
ROUTES = API / "routes"
ROUTE_PACKAGE = "voxvault.api.routes"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute (relative imports resolved against the routes package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = ROUTE_PACKAGE.split(".")[: len(ROUTE_PACKAGE.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_scan_sees_route_imports(tmp_path: Path) -> None:
    """The checker itself: absolute, from-package and relative imports of a route module are all seen."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from voxvault.api.routes.speech import x\n"
        "from voxvault.api.routes import keys\n"
        "from . import voices\n"
    )
    seen = _imported(sample)
    assert {"voxvault.api.routes.speech", "voxvault.api.routes.keys", "voxvault.api.routes.voices"} <= seen


def test_no_route_module_imports_another() -> None:
    names = {p.stem for p in _modules(ROUTES)}
    offenders = {
        path.name: sorted(m for m in _imported(path) if m.removeprefix(ROUTE_PACKAGE + ".") in names)
        for path in _modules(ROUTES)
    }
    offenders = {name: mods for name, mods in offenders.items() if mods}
    assert not offenders, f"route modules import route modules (move what they share out): {offenders}"


def _reads_state_vv(path: Path) -> list[int]:
    """Lines that read ``<x>.state.vv`` or ``getattr(<x>.state, "vv")``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "vv"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "state"
        ):
            lines.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "vv"
        ):
            lines.append(node.lineno)
    return lines


def test_the_state_scan_sees_a_direct_read(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(request):\n    a = request.app.state.vv\n    return getattr(request.app.state, 'vv')\n"
    )
    assert _reads_state_vv(sample) == [2, 3]


def test_no_route_reads_app_state_vv() -> None:
    """Only api.deps (and app.py, which stores it) touch ``app.state.vv``; routes and the services they
    hand a socket to take ``VoxVaultDep`` or get the service passed in."""
    allowed = {API / "deps.py", API / "app.py"}
    offenders = {
        str(path.relative_to(API)): found
        for path in [*_modules(API), *_modules(ROUTES)]
        if path not in allowed and (found := _reads_state_vv(path))
    }
    assert not offenders, f"read app.state.vv directly (use api.deps.VoxVaultDep): {offenders}"


# ------------------------------------------------------------------------------------------- one key check
@pytest.fixture(scope="module")
def tc(vv) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    with TestClient(create_app(vv=vv, warm_up=False)) as c:
        yield c


def _key(vv: Any, scopes: list[str], name: str) -> tuple[str, str]:
    org_id, project_id = vv.keys.ensure_default_project()
    created = vv.keys.create(org_id=org_id, project_id=project_id, scopes=scopes, name=name)
    return str(created.secret), str(created.id)


def _ws_refusal(tc: TestClient, url: str, headers: dict[str, str]) -> tuple[dict[str, Any], int]:
    with tc.websocket_connect(url, headers=headers) as ws:
        error = json.loads(ws.receive()["text"])["error"]
        close = ws.receive()
    return error, int(close["code"])


def test_a_missing_scope_is_refused_and_audited_alike_on_every_way_in(tc: TestClient, vv: Any) -> None:
    """A key without the scope: 403 over HTTP, close 1008 on a socket, and one ``access.denied`` entry
    of the same shape each time, naming the route (the multi-context socket used to be audited under the
    stream-input path)."""
    secret, key_id = _key(vv, ["audit:read"], "wrong-scope")
    headers = {"xi-api-key": secret}
    r = tc.post("/v1/text-to-speech/alpha", json={"text": "Hi."}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    for path in ("stream-input", "multi-stream-input"):
        error, code = _ws_refusal(tc, f"/v1/text-to-speech/alpha/{path}", headers)
        assert (error["code"], code) == ("insufficient_scope", 1008)
    error, code = _ws_refusal(tc, "/v1/speech-to-text/stream", {"Authorization": f"Bearer {secret}"})
    assert (error["code"], code) == ("insufficient_scope", 1008)

    denied = [e for e in vv.audit.entries() if e["action"] == "access.denied" and e["actor"] == key_id]
    assert [(e["target"], e["details"]) for e in denied] == [
        (
            "/v1/text-to-speech/{voice_id}",
            {"reason": "insufficient_scope", "scope": "speech:create", "method": "POST"},
        ),
        (
            "/v1/text-to-speech/{voice_id}/stream-input",
            {"reason": "insufficient_scope", "scope": "speech:create", "method": "WEBSOCKET"},
        ),
        (
            "/v1/text-to-speech/{voice_id}/multi-stream-input",
            {"reason": "insufficient_scope", "scope": "speech:create", "method": "WEBSOCKET"},
        ),
        (
            "/v1/speech-to-text/stream",
            {"reason": "insufficient_scope", "scope": "speech:transcribe", "method": "WEBSOCKET"},
        ),
    ]


def test_sockets_say_where_a_key_goes(tc: TestClient) -> None:
    """No key: 401's message names the places a client of that socket can put one (the error body shape
    ElevenLabs clients read: ``{"error": {"code", "message"}}``)."""
    error, code = _ws_refusal(tc, "/v1/speech-to-text/stream", {})
    assert (error["code"], code) == ("missing_api_key", 1008) and "?api_key=" in error["message"]
    with tc.websocket_connect("/v1/text-to-speech/alpha/stream-input") as ws:
        ws.send_json({"text": " "})  # the first message may carry the key; this one does not
        error = json.loads(ws.receive()["text"])["error"]
        close = ws.receive()
    assert (error["code"], close["code"]) == ("missing_api_key", 1008)
    assert "xi_api_key in the first message" in error["message"]


def test_a_refused_transcription_socket_keeps_the_gate_count(tc: TestClient, vv: Any) -> None:
    """The gate is full: each socket is refused with 1013, and a refusal does not free a place it never
    took (it used to, so every other refused socket got in past the limit)."""
    secret, _ = _key(vv, ["speech:transcribe"], "stt-gate")
    gate = TranscriptionGate(running=1, waiting=0)
    gate.admit()  # someone holds the only place
    tc.app.state.transcription_gate = gate  # type: ignore[attr-defined]
    try:
        for _ in range(3):
            error, code = _ws_refusal(tc, "/v1/speech-to-text/stream", {"Authorization": f"Bearer {secret}"})
            assert (error["code"], code) == ("server_busy", 1013)
    finally:
        gate.done(False)
        tc.app.state.transcription_gate = None  # type: ignore[attr-defined]
