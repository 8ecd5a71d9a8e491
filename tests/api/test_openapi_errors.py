"""/openapi.json declares the error responses routes really answer, in the error shape (audit finding 9)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from voxvault.service import VoxVault

pytestmark = pytest.mark.slow
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def spec(anon_client: TestClient) -> dict[str, Any]:
    r = anon_client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def declared(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return dict(spec["paths"][path][method.lower()]["responses"])


def test_error_schema_is_the_one_the_app_sends(spec: dict[str, Any], anon_client: TestClient) -> None:
    schema = spec["components"]["schemas"]["ErrorResponse"]
    assert schema["required"] == ["error"]
    body = spec["components"]["schemas"]["ErrorBody"]
    sent = anon_client.post("/v1/audio/speech", json={"input": "hi"}).json()
    assert set(body["required"]) <= set(sent["error"]) <= set(body["properties"])


def test_every_operation_declares_its_errors_with_the_error_schema(spec: dict[str, Any]) -> None:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "400" in responses, (method, path)
            for code, response in responses.items():
                if code.startswith("4"):
                    assert response["content"]["application/json"]["schema"] == ERROR_REF, (
                        method,
                        path,
                        code,
                    )
            if path.startswith("/v1/") and path != "/v1/models":
                assert {"401", "403"} <= set(responses), (method, path)


def test_what_routes_answer_is_declared(
    spec: dict[str, Any], client: TestClient, anon_client: TestClient, vv: VoxVault
) -> None:
    """Real refusals, one of each kind; each status must be one its operation declares."""
    org, project = vv.keys.ensure_default_project()
    reader = vv.keys.create(org_id=org, project_id=project, scopes=["voices:read"]).secret
    as_reader = {"Authorization": f"Bearer {reader}"}
    other_org, other_project = vv.keys.create_org_project("openapi-tenant")
    lone = vv.keys.create(org_id=other_org, project_id=other_project, scopes=["admin"])
    as_lone = {"Authorization": f"Bearer {lone.secret}"}
    cases = [
        ("POST", "/v1/audio/speech", anon_client.post("/v1/audio/speech", json={"input": "hi"})),
        (
            "POST",
            "/v1/audio/speech",
            client.post("/v1/audio/speech", content=b"{", headers={"content-type": "application/json"}),
        ),
        ("POST", "/v1/audio/speech", client.post("/v1/audio/speech", json={"input": "hi", "voice": "nope"})),
        ("POST", "/v1/audio/speech", client.post("/v1/audio/speech", json={"input": "a" * 20_001})),
        ("POST", "/v1/audio/speech", client.post("/v1/audio/speech", json={})),
        (
            "POST",
            "/v1/audio/speech",
            anon_client.post("/v1/audio/speech", json={"input": "hi"}, headers=as_reader),
        ),
        ("GET", "/v1/keys", anon_client.get("/v1/keys", headers=as_reader)),
        ("GET", "/v1/voices/{voice_id}", client.get("/v1/voices/v-none")),
        ("DELETE", "/v1/keys/{key_id}", anon_client.delete(f"/v1/keys/{lone.id}", headers=as_lone)),
        (
            "POST",
            "/v1/watermark/detect",
            client.post("/v1/watermark/detect", content=b"not audio", headers={"content-type": "audio/wav"}),
        ),
    ]
    seen = set()
    for method, path, r in cases:
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:200])
        assert str(r.status_code) in declared(spec, method, path), (method, path, r.status_code, r.text[:200])
        seen.add(r.status_code)
    assert {400, 401, 403, 404, 409, 413, 422} <= seen


def test_an_id_in_the_query_declares_404(spec: dict[str, Any], client: TestClient) -> None:
    """Found by make bench-security: GET /v1/projects?organization_id=<another tenant's> answered an
    undeclared 404."""
    r = client.get("/v1/projects", params={"organization_id": "o-none"})
    assert r.status_code == 404
    assert "404" in declared(spec, "GET", "/v1/projects")
