"""A stolen disk reveals nothing: the database and blob files, read raw, hold no embedding, style or audio."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voxvault.service import VoxVault
from voxvault.store.models import Consent, Voice, utcnow

SPEAKERS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "speakers"


def _chunks(data: bytes, size: int = 32, stride: int = 256) -> list[bytes]:
    """``size``-byte windows every ``stride`` bytes: any plaintext run longer than the stride hits one."""
    return [data[i : i + size] for i in range(0, len(data) - size + 1, stride)]


def _disk(vv: VoxVault) -> dict[Path, bytes]:
    vv.db.dispose()  # let SQLite checkpoint; the WAL and shm files are scanned too in case it did not
    root = Path(vv.settings.data_dir)
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "master.key"}


def _pcm(rng: np.random.Generator) -> bytes:
    clips = sorted(SPEAKERS.glob("en_*.wav")) if SPEAKERS.is_dir() else []
    if clips:
        with wave.open(str(clips[0])) as w:
            return w.readframes(w.getnframes())[: 48000 * 2]
    # No shared clips: a synthetic voice-like signal still proves the point for bytes on disk.
    t = np.arange(48000) / 24000
    return (np.sin(2 * np.pi * 140 * t) * 8000 + rng.normal(0, 300, t.size)).astype(np.int16).tobytes()


def test_raw_files_hold_no_plaintext_embedding_style_or_audio(vv: VoxVault) -> None:
    rng = np.random.default_rng(7)
    embedding = rng.standard_normal(256).astype(np.float32)
    style = rng.standard_normal((510, 256)).astype(np.float32) * 0.1
    audio = _pcm(rng)
    _, project = vv.keys.ensure_default_project()

    with vv.db.session() as s:
        consent = Consent(
            project_id=project,
            speaker_name="Ada",
            purpose="audiobook",
            organization_name="Acme",
            script="I agree",
            challenge_hash="0" * 64,
            challenge_expires_at=utcnow(),
        )
        s.add(consent)
        s.flush()
        voice = Voice(
            project_id=project,
            name="ada",
            kind="cloned",
            status="active",
            engine="kokoro",
            consent_id=consent.id,
        )
        s.add(voice)
        s.flush()
        keys = {
            "embedding": f"voices/{voice.id}/embedding",
            "style": f"voices/{voice.id}/style",
            "evidence": f"consents/{consent.id}/recording",
        }
        payloads = {"embedding": embedding.tobytes(), "style": style.tobytes(), "evidence": audio}
        for name, key in keys.items():
            vv.blobs.put(key, vv.envelope.seal(payloads[name], key))
        voice.embedding_blob, voice.style_blob = keys["embedding"], keys["style"]
        consent.evidence_blob = keys["evidence"]

    # Round trip first: the test would be meaningless if the data were not there at all.
    for name, key in keys.items():
        assert vv.envelope.open(vv.blobs.get(key), key) == payloads[name]

    disk = _disk(vv)
    assert any(p.suffix == "" and "voices" in p.parts for p in disk), "blob files were written"
    for name, plain in payloads.items():
        chunks = _chunks(plain)
        assert chunks
        for path, data in disk.items():
            leaked = sum(chunk in data for chunk in chunks)
            assert leaked == 0, f"{leaked} plaintext {name} chunks found in {path}"
    # And the values are not stored as text either (e.g. JSON floats in a row).
    text = b"".join(disk.values())
    assert f"{float(embedding[0]):.6f}".encode() not in text


def test_sealed_bytes_look_random(vv: VoxVault) -> None:
    """Silence would be all zeros in plaintext; sealed, its bytes are spread evenly."""
    sealed = vv.envelope.seal(bytes(64_000), "voices/x/style")
    counts = np.bincount(np.frombuffer(sealed, dtype=np.uint8), minlength=256)
    assert counts.max() < 3 * counts.mean()
