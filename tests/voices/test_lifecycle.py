"""A cloned voice's status is enforced on every use; erasure and the retention sweep delete for good.

Real database and blob store in a temporary data dir; no models are needed (rows and sealed blobs are
written the way enrollment writes them).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import make_voice

from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.service import VoxVault
from voxvault.store.models import Consent, Voice, utcnow
from voxvault.voices.lifecycle import array_bytes, blob_key


@pytest.fixture
def local(tmp_path: Path) -> VoxVault:
    return VoxVault(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))


def voice_with_evidence(
    vv: VoxVault, *, keep_samples_until: dt.datetime | None = None
) -> tuple[str, str, np.ndarray]:
    """conftest's voice with its consent evidence kept and a known recording digest (the replay guard)."""
    _, project = vv.keys.ensure_default_project()
    style = np.random.default_rng(0).normal(size=(510, 256)).astype(np.float32)
    vid = make_voice(
        vv,
        project,
        style,
        recording_sha256="f" * 64,
        evidence=b"zip with the recording",
        keep_samples_until=keep_samples_until,
    )
    return vid, project, style


def code_of(call: object) -> tuple[str, int]:
    assert callable(call)
    with pytest.raises(VoxError) as info:
        call()
    return info.value.code, info.value.status


def test_an_active_voice_speaks_with_its_sealed_style(local: VoxVault) -> None:
    vid, project, style = voice_with_evidence(local)
    assert np.array_equal(local.voice_registry.style_for(vid, project), style)
    assert np.array_equal(local.voice_registry.style_for(vid, None), style)  # local operator
    assert code_of(lambda: local.voice_registry.style_for(vid, "another-project")) == ("voice_not_found", 404)
    raw = local.blobs.get(blob_key(vid, "style"))
    assert array_bytes(style)[200:264] not in raw  # sealed at rest


def test_revoked_and_expired_voices_refuse_to_speak(local: VoxVault) -> None:
    vid, project, _ = voice_with_evidence(local)
    registry = local.voice_registry
    with local.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    assert code_of(lambda: registry.style_for(vid, project)) == ("consent_expired", 403)
    assert registry.get(vid, project).status == "expired"
    assert registry.sweep().expired == 1
    described = registry.revoke(vid, project, actor="t")
    assert described.status == "revoked" and described.consent is not None
    assert described.consent.status == "revoked"
    assert code_of(lambda: registry.style_for(vid, project)) == ("consent_revoked", 403)


def test_renaming_changes_only_the_name(local: VoxVault) -> None:
    vid, project, style = voice_with_evidence(local)
    assert local.voice_registry.rename(vid, project, "  New   name ", actor="t").name == "New name"
    assert np.array_equal(local.voice_registry.style_for(vid, project), style)
    assert code_of(lambda: local.voice_registry.rename(vid, project, " ", actor="t")) == ("invalid_name", 422)


def test_renewal_needs_a_consent_verified_for_this_voice(local: VoxVault) -> None:
    vid, project, _ = voice_with_evidence(local)
    with local.db.session() as s:
        other = Consent(
            project_id=project,
            speaker_name="Ada",
            purpose="tests",
            organization_name="Lab",
            script="...",
            challenge_hash="1" * 64,
            challenge_expires_at=utcnow(),
            status="verified",
            expires_at=utcnow() + dt.timedelta(days=90),
            scores={"voice_id": "some-other-voice"},
        )
        s.add(other)
        s.flush()
        other_id = other.id
    assert code_of(lambda: local.voice_registry.renew(vid, project, other_id, actor="t")) == (
        "consent_not_verified",
        409,
    )


def test_erasure_deletes_every_payload_and_scrubs_the_rows(local: VoxVault) -> None:
    vid, project, _ = voice_with_evidence(local, keep_samples_until=utcnow() + dt.timedelta(days=3))
    assert len(list(local.blobs.list(f"voices/{vid}/"))) == 4
    result = local.voice_registry.erase(vid, project, actor="t")
    assert result.blobs_deleted == 4 and result.consents_scrubbed == 1
    # Nothing but the audit chain's key and checkpoint (docs/security.md, finding 5) is left.
    assert [k for k in local.blobs.list("") if not k.startswith("audit/")] == []
    assert not (Path(local.settings.data_dir) / "blobs" / "voices" / vid).exists()  # no empty folders
    with local.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None and row.status == "erased" and row.name == "[erased]"
        assert (row.embedding_blob, row.style_blob, row.meta) == (None, None, {})
        consent = s.get(Consent, row.consent_id)
        assert consent is not None
        assert (consent.speaker_name, consent.evidence_blob, consent.status) == ("[erased]", None, "revoked")
        assert consent.recording_sha256 == "f" * 64  # still refuses a replay of that recording
    assert code_of(lambda: local.voice_registry.get(vid, project)) == ("voice_not_found", 404)
    assert code_of(lambda: local.voice_registry.erase(vid, project, actor="t")) == ("voice_not_found", 404)
    entries = [e for e in local.audit.entries() if e["target"] == vid]
    assert [e["action"] for e in entries] == ["voice.erased"]


def test_the_sweep_deletes_samples_kept_past_their_date(local: VoxVault) -> None:
    vid, project, _ = voice_with_evidence(local, keep_samples_until=utcnow() - dt.timedelta(seconds=1))
    assert local.blobs.exists(blob_key(vid, "samples/0"))
    assert local.voice_registry.sweep().samples_deleted == 1
    assert not local.blobs.exists(blob_key(vid, "samples/0"))
    assert local.blobs.exists(blob_key(vid, "style"))
    retention = local.voice_registry.get(vid, project).retention
    assert retention["samples"]["kept"] is False and "deleted_at" in retention["samples"]
