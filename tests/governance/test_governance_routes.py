"""/v1/keys and /v1/audit as an organisation's admin and auditor meet them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from voxvault.api.app import create_app
from voxvault.governance.keys import hash_key
from voxvault.service import VoxVault
from voxvault.store.models import AuditLog


class Tenant:
    def __init__(self, app: object, vv: VoxVault, org: str, project: str, admin: str) -> None:
        self.vv, self.org, self.project = vv, org, project
        self.client = TestClient(app, headers={"Authorization": f"Bearer {admin}"})  # type: ignore[arg-type]
        self.admin = admin

    def key(self, *scopes: str, **extra: object) -> dict[str, object]:
        r = self.client.post("/v1/keys", json={"scopes": list(scopes), **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def as_key(self, secret: str) -> TestClient:
        return TestClient(self.client.app, headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def tenants(vv: VoxVault) -> Iterator[tuple[Tenant, Tenant]]:
    app = create_app(vv=vv, warm_up=False)
    boot = vv.bootstrap()
    assert boot is not None
    operator = Tenant(app, vv, boot.org_id, boot.project_id, boot.secret)
    org_b, project_b = vv.keys.create_org_project("customer b")
    admin_b = vv.keys.create(org_id=org_b, project_id=project_b, scopes=["admin"], name="b admin").secret
    yield operator, Tenant(app, vv, org_b, project_b, admin_b)


def test_create_shows_the_secret_once_and_never_again(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    created = a.key("speech:create", "voices:read", name="ci", voice_ids=["alpha"], expires_at="2099-01-01")
    secret = str(created["key"])
    assert created["scopes"] == ["speech:create", "voices:read"] and created["voice_ids"] == ["alpha"]
    assert created["expires_at"].startswith("2099-01-01T00:00:00")  # type: ignore[union-attr]
    listing = a.client.get("/v1/keys")
    assert listing.status_code == 200
    assert secret not in listing.text and hash_key(secret) not in listing.text
    assert "key" not in listing.json()["keys"][0] and "key_hash" not in listing.text
    assert created["id"] in {k["id"] for k in listing.json()["keys"]}
    # The new key works, for what it may do only.
    assert a.as_key(secret).get("/v1/keys").status_code == 403


def test_revoked_key_is_refused_from_the_next_request(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    created = a.key("audit:read")
    client = a.as_key(str(created["key"]))
    assert client.get("/v1/audit/verify").status_code == 200
    r = a.client.delete(f"/v1/keys/{created['id']}")
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    refused = client.get("/v1/audit/verify")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "api_key_revoked"
    assert a.client.delete(f"/v1/keys/{created['id']}").status_code == 200  # idempotent


def test_other_organisations_keys_do_not_exist_for_an_admin(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    a_key = a.key("speech:create")
    assert b.client.delete(f"/v1/keys/{a_key['id']}").status_code == 404
    assert a_key["id"] not in b.client.get("/v1/keys").text
    assert b.client.post("/v1/keys", json={"scopes": ["admin"], "project_id": a.project}).status_code == 404
    assert a.as_key(str(a_key["key"])).get("/v1/audit").status_code == 403  # still valid, still narrow


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"scopes": []}, 422, None),
        ({"scopes": ["root"]}, 422, None),
        ({"scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z"}, 400, "invalid_expiry"),
        ({"scopes": ["admin"], "voice_ids": ["no spaces allowed"]}, 422, None),
        ({"scopes": ["admin"], "unknown": 1}, 422, None),
        ({"scopes": ["admin"], "expires_at": "9999-12-31T23:59:59-05:00"}, 400, "invalid_expiry"),
    ],
)
def test_bad_key_requests_are_refused(
    tenants: tuple[Tenant, Tenant], body: dict[str, object], status: int, code: str | None
) -> None:
    r = tenants[0].client.post("/v1/keys", json=body)
    assert r.status_code == status, r.text
    if code:
        assert r.json()["error"]["code"] == code


def test_voice_limited_admin_cannot_mint_broader_keys(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    narrow = a.as_key(str(a.key("admin", voice_ids=["alpha", "kumo"])["key"]))
    r = narrow.post("/v1/keys", json={"scopes": ["speech:create"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "voice_not_allowed"
    assert (
        narrow.post("/v1/keys", json={"scopes": ["speech:create"], "voice_ids": ["kumo"]}).status_code == 201
    )


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_audit_export_is_jsonl_since_seq_or_time(tenants: tuple[Tenant, Tenant]) -> None:
    a, _ = tenants
    a.key("speech:create")
    r = a.client.get("/v1/audit")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    entries = _lines(r.text)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert {"seq", "ts", "actor", "action", "target", "details", "prev_hash", "hash"} <= set(entries[0])
    assert [e["seq"] for e in _lines(a.client.get("/v1/audit", params={"since": 2}).text)] == [
        e["seq"] for e in entries[2:]
    ]
    since_ts = entries[-1]["ts"]
    assert _lines(a.client.get("/v1/audit", params={"since": since_ts}).text)[0]["seq"] == entries[-1]["seq"]
    for bad in ("yesterday", "²", "-1"):
        r = a.client.get("/v1/audit", params={"since": bad})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_since"


def test_other_organisations_see_only_their_own_audit_entries(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    a_key = a.key("speech:create")
    b_key = b.key("audit:read")
    b.as_key(str(b_key["key"])).get("/v1/keys")  # a denial in b, audited with b's key as actor
    seen_by_b = _lines(b.as_key(str(b_key["key"])).get("/v1/audit").text)
    assert seen_by_b, "b sees its own entries"
    b_keys = a.vv.keys.org_key_ids(b.org)
    assert b_key["id"] in b_keys
    assert all(e["actor"] in b_keys or e["target"] in b_keys for e in seen_by_b)
    assert {"key.created", "access.denied"} <= {e["action"] for e in seen_by_b}
    assert str(a_key["id"]) not in json.dumps(seen_by_b) and a.org not in json.dumps(seen_by_b)
    seen_by_a = _lines(a.client.get("/v1/audit").text)
    assert {e["seq"] for e in seen_by_b} < {e["seq"] for e in seen_by_a}  # the operator sees everything


def test_verify_endpoint_reports_tampering(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    a.key("speech:create")
    a.key("voices:read")
    ok = a.client.get("/v1/audit/verify").json()
    assert ok["ok"] is True and ok["problems"] == []
    assert a.client.get("/v1/audit/verify", params={"anchor": ok["anchor"]}).json()["ok"] is True
    assert a.client.get("/v1/audit/verify", params={"anchor": "nonsense"}).status_code == 422
    with a.vv.db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.execute(update(AuditLog.__table__).where(AuditLog.__table__.c.seq == 2).values(action="x"))
    bad = a.client.get("/v1/audit/verify").json()
    assert bad["ok"] is False and bad["problems"] == [
        {"seq": 2, "kind": "edited", "message": bad["problems"][0]["message"]}
    ]
    other = b.client.get("/v1/audit/verify").json()
    assert other["ok"] is False and other["problems"] == [{"seq": 2, "kind": "edited", "message": None}]


def test_audit_actors_names_the_keys_a_reader_may_see(tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    ci = a.key("speech:create", name="ci")
    operator = a.client.get("/v1/audit/actors")
    assert operator.status_code == 200
    actors = operator.json()["actors"]
    assert actors[str(ci["id"])] == "ci"
    assert "bootstrap admin" in actors.values() and "b admin" in actors.values()  # the operator sees all
    other = b.client.get("/v1/audit/actors").json()["actors"]
    assert set(other.values()) == {"b admin"}  # another tenant sees its own keys only
    assert a.as_key(str(ci["key"])).get("/v1/audit/actors").status_code == 403  # needs audit:read


def test_operator_admin_creates_an_organisation_with_its_first_admin_key(
    tenants: tuple[Tenant, Tenant],
) -> None:
    """Audit finding 9: no API created organisations or projects (only the Python library)."""
    operator, b = tenants
    r = operator.client.post("/v1/organizations", json={"name": "Customer C", "project_name": "dubbing"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert org["name"] == "Customer C" and [p["name"] for p in org["projects"]] == ["dubbing"]
    secret = org["admin_key"]["key"]
    c = operator.as_key(secret)
    assert [k["id"] for k in c.get("/v1/keys").json()["keys"]] == [org["admin_key"]["id"]]
    # The new tenant's admin sees only its own organisation; the operator sees all three.
    assert [o["id"] for o in c.get("/v1/organizations").json()["organizations"]] == [org["id"]]
    listed = {o["id"] for o in operator.client.get("/v1/organizations").json()["organizations"]}
    assert {operator.org, b.org, org["id"]} <= listed
    # Audited, with the operator's key as actor.
    actions = [(e["action"], e["actor"]) for e in operator.vv.audit.entries()]
    admin_id = operator.vv.keys.authenticate(operator.admin).key_id
    assert ("org.created", admin_id) in actions and ("key.created", admin_id) in actions


def test_other_organisations_cannot_create_organisations(tenants: tuple[Tenant, Tenant]) -> None:
    _, b = tenants
    r = b.client.post("/v1/organizations", json={"name": "Sneaky"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "operator_only"
    assert "Sneaky" not in {o.name for o in b.vv.keys.organizations()}
    assert b.client.post("/v1/organizations", json={"name": "x"}).status_code == 403
    assert b.as_key(str(b.key("voices:read")["key"])).get("/v1/organizations").status_code == 403


def test_admins_create_projects_in_their_own_organisation_only(tenants: tuple[Tenant, Tenant]) -> None:
    operator, b = tenants
    r = b.client.post("/v1/projects", json={"name": "podcasts"})
    assert r.status_code == 201, r.text
    project = r.json()
    assert project["organization_id"] == b.org
    assert b.client.post("/v1/projects", json={"name": "podcasts"}).status_code == 409
    names = [p["name"] for p in b.client.get("/v1/projects").json()["projects"]]
    assert names == ["default", "podcasts"]
    # A key in the new project works there.
    key = b.key("voices:read", project_id=project["id"])
    assert key["project_id"] == project["id"]
    # Another organisation's id does not exist for b; the operator may act on it.
    assert (
        b.client.post("/v1/projects", json={"name": "x", "organization_id": operator.org}).status_code == 404
    )
    assert b.client.get("/v1/projects", params={"organization_id": operator.org}).status_code == 404
    r = operator.client.post("/v1/projects", json={"name": "support", "organization_id": b.org})
    assert r.status_code == 201 and r.json()["organization_id"] == b.org
    assert any(e["action"] == "project.created" for e in b.vv.audit.entries())


def test_a_voice_limited_admin_cannot_manage_tenants(tenants: tuple[Tenant, Tenant]) -> None:
    operator, _ = tenants
    limited = operator.as_key(str(operator.key("admin", voice_ids=["alpha"])["key"]))
    assert limited.post("/v1/projects", json={"name": "wider"}).status_code == 403
    assert limited.post("/v1/organizations", json={"name": "wider"}).status_code == 403
