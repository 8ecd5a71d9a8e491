"""API keys: shown once, stored hashed, refused when wrong, revoked or expired; bootstrap on first start."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from voxvault.errors import VoxError
from voxvault.governance.keys import SCOPES, hash_key, parse_expiry
from voxvault.service import VoxVault
from voxvault.store.models import ApiKey, utcnow


def _tenant(vv: VoxVault) -> tuple[str, str]:
    return vv.keys.ensure_default_project()


def test_secret_is_returned_once_and_only_its_hash_is_stored(vv: VoxVault) -> None:
    org, project = _tenant(vv)
    created = vv.keys.create(org_id=org, project_id=project, scopes=["speech:create"], name="ci")
    assert created.secret.startswith(f"vv_{created.prefix}_") and len(created.secret) > 40
    vv.db.dispose()  # flush the WAL into the main file too
    raw = b"".join(p.read_bytes() for p in Path(vv.settings.data_dir).glob("voxvault.db*"))
    assert created.secret.encode() not in raw
    # The random part, whole: it may itself hold "_" (urlsafe base64), so not split("_")[-1], which could
    # be one character and found by chance in any database file.
    assert created.secret.removeprefix(f"vv_{created.prefix}_").encode() not in raw
    assert hash_key(created.secret).encode() in raw
    listed = vv.keys.list(org)
    assert [k.prefix for k in listed] == [created.prefix]
    assert not hasattr(listed[0], "secret") and not hasattr(listed[0], "key_hash")


def test_authenticate_returns_the_tenant_and_scopes(vv: VoxVault) -> None:
    org, project = _tenant(vv)
    created = vv.keys.create(
        org_id=org, project_id=project, scopes=["voices:read", "speech:create"], voice_ids=["alpha", "kumo"]
    )
    p = vv.keys.authenticate(created.secret)
    assert (p.org_id, p.project_id, p.key_id) == (org, project, created.id)
    assert p.has("speech:create") and not p.has("admin") and not p.has("voices:write")
    assert p.may_use_voice("alpha") and not p.may_use_voice("other")
    admin = vv.keys.authenticate(vv.keys.create(org_id=org, project_id=project, scopes=["admin"]).secret)
    assert all(admin.has(s) for s in SCOPES) and admin.may_use_voice("anything")


@pytest.mark.parametrize("secret", ["", "vv_nope", "x" * 300])
def test_unknown_key_is_refused(vv: VoxVault, secret: str) -> None:
    with pytest.raises(VoxError) as err:
        vv.keys.authenticate(secret)
    assert (err.value.code, err.value.status) == ("invalid_api_key", 401)


def test_revoked_and_expired_keys_are_refused_and_audited(vv: VoxVault) -> None:
    org, project = _tenant(vv)
    revoked = vv.keys.create(org_id=org, project_id=project, scopes=["speech:create"])
    vv.keys.revoke(revoked.id, org, actor="someone")
    with pytest.raises(VoxError) as err:
        vv.keys.authenticate(revoked.secret)
    assert (err.value.code, err.value.status) == ("api_key_revoked", 401)

    expiring = vv.keys.create(
        org_id=org, project_id=project, scopes=["speech:create"], expires_at=utcnow() + dt.timedelta(hours=1)
    )
    vv.keys.authenticate(expiring.secret)
    with vv.db.session() as s:
        s.execute(
            update(ApiKey)
            .where(ApiKey.id == expiring.id)
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    with pytest.raises(VoxError) as err:
        vv.keys.authenticate(expiring.secret)
    assert err.value.code == "api_key_expired"
    assert vv.keys.get(expiring.id).state == "expired"

    actions = [(e["action"], e["actor"], e["details"].get("reason")) for e in vv.audit.entries()]
    assert ("key.revoked", "someone", None) in actions
    assert ("access.denied", revoked.id, "api_key_revoked") in actions
    assert ("access.denied", expiring.id, "api_key_expired") in actions


def test_keys_stay_inside_their_organisation(vv: VoxVault) -> None:
    org_a, project_a = _tenant(vv)
    org_b, project_b = vv.keys.create_org_project("tenant b")
    with pytest.raises(VoxError) as err:
        vv.keys.create(org_id=org_b, project_id=project_a, scopes=["admin"])
    assert err.value.code == "project_not_found"
    key_a = vv.keys.create(org_id=org_a, project_id=project_a, scopes=["admin"])
    with pytest.raises(VoxError) as err:
        vv.keys.revoke(key_a.id, org_b)
    assert err.value.status == 404
    assert vv.keys.get(key_a.id).state == "active"
    assert vv.keys.org_key_ids(org_b) == set()
    assert vv.keys.operator_org_id() == org_a


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"scopes": []}, "invalid_scope"),
        ({"scopes": ["speech:create", "root"]}, "invalid_scope"),
        ({"scopes": ["admin"], "voice_ids": ["bad id!"]}, "invalid_voice_ids"),
        ({"scopes": ["admin"], "expires_at": dt.datetime(2001, 1, 1, tzinfo=dt.UTC)}, "invalid_expiry"),
        ({"scopes": ["admin"], "secret": "short"}, "weak_key"),
        ({"scopes": ["admin"], "name": "n" * 201}, "invalid_name"),
    ],
)
def test_bad_key_requests_are_refused(vv: VoxVault, kwargs: dict[str, object], code: str) -> None:
    org, project = _tenant(vv)
    with pytest.raises(VoxError) as err:
        vv.keys.create(org_id=org, project_id=project, **kwargs)  # type: ignore[arg-type]
    assert err.value.code == code


def test_parse_expiry() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert parse_expiry("30d", now) == now + dt.timedelta(days=30)
    assert parse_expiry("12h", now) == now + dt.timedelta(hours=12)
    assert parse_expiry("2w", now) == now + dt.timedelta(weeks=2)
    assert parse_expiry("2031-02-03", now) == dt.datetime(2031, 2, 3, tzinfo=dt.UTC)
    assert parse_expiry("2031-02-03T04:00:00+02:00", now) == dt.datetime(2031, 2, 3, 2, tzinfo=dt.UTC)
    for bad in ("soon", "0d", "-3d", "99999999999999d"):
        with pytest.raises(VoxError):
            parse_expiry(bad, now)


def test_bootstrap_creates_one_admin_key_once(tmp_path: Path, make_vv: Callable[..., VoxVault]) -> None:
    vv = make_vv(tmp_path / "d")
    created = vv.bootstrap()
    assert created is not None and created.scopes == ["admin"]
    assert vv.keys.authenticate(created.secret).has("admin")
    assert vv.bootstrap() is None
    assert make_vv(tmp_path / "d").bootstrap() is None  # a restart prints nothing
    entry = next(iter(vv.audit.entries()))
    assert entry["action"] == "key.created" and entry["details"]["bootstrap"] is True
    assert created.secret not in str(entry)


def test_bootstrap_key_from_settings(tmp_path: Path, make_vv: Callable[..., VoxVault]) -> None:
    secret = "deploy-" + "k" * 40
    vv = make_vv(tmp_path / "d", bootstrap_key=secret)
    created = vv.bootstrap()
    assert created is not None and created.secret == secret
    assert vv.keys.authenticate(secret).has("admin")


def test_a_supplied_key_is_not_listed_by_its_own_first_characters(
    tmp_path: Path, make_vv: Callable[..., VoxVault]
) -> None:
    """Audit finding 9: the bootstrap key's first 8 characters were stored and listed as its prefix."""
    for secret in ("deploy-" + "k" * 40, "vv_0123abcd_" + "s" * 40):
        vv = make_vv(tmp_path / secret[:6], bootstrap_key=secret)
        created = vv.bootstrap()
        assert created is not None
        listed = vv.keys.list()[0].prefix
        assert listed == created.prefix and len(listed) == 8
        for part in (secret[i : i + 4] for i in range(len(secret) - 3)):
            assert part not in listed  # no four characters of the secret in what is shown
        assert listed not in hash_key(secret)  # nor a piece of the stored hash
        vv.db.dispose()
        raw = b"".join(p.read_bytes() for p in (tmp_path / secret[:6]).glob("voxvault.db*"))
        assert secret[:8].encode() not in raw


def test_the_last_admin_key_of_an_organisation_cannot_be_revoked(vv: VoxVault) -> None:
    """Audit finding 9: an admin key could revoke itself, leaving nothing to manage the organisation."""
    org, project = vv.keys.create_org_project("tenant")
    first = vv.keys.create(org_id=org, project_id=project, scopes=["admin"])
    limited = vv.keys.create(org_id=org, project_id=project, scopes=["admin"], voice_ids=["alpha"])
    vv.keys.create(org_id=org, project_id=project, scopes=["speech:create", "voices:write"])
    with pytest.raises(VoxError) as err:
        vv.keys.revoke(first.id, org, actor=first.id)
    assert (err.value.code, err.value.status) == ("last_admin_key", 409)
    assert vv.keys.get(first.id, org).state == "active"

    second = vv.keys.create(org_id=org, project_id=project, scopes=["admin"])
    vv.keys.revoke(first.id, org, actor=second.id)  # another admin exists: fine
    with pytest.raises(VoxError):
        vv.keys.revoke(second.id, org, actor=second.id)
    vv.keys.revoke(limited.id, org, actor=second.id)  # a voice-limited admin is not the last one
    # An expired admin key does not count as one left.
    with vv.db.session() as s:
        s.execute(update(ApiKey).where(ApiKey.id == second.id).values(expires_at=utcnow() - dt.timedelta(1)))
    vv.keys.revoke(second.id, org, actor="someone")
    # The CLI (the operator, who can always create a key) may revoke the last one.
    third = vv.keys.create(org_id=org, project_id=project, scopes=["admin"])
    assert vv.keys.revoke(third.id, None, actor="cli").state == "revoked"
