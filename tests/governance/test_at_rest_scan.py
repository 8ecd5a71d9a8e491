"""A stolen disk reveals nothing: the database and blob files, read raw, hold no embedding, style or audio."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from tests.conftest import make_voice

from voxvault.service import VoxVault
from voxvault.store.models import Consent, Voice
from voxvault.voices.lifecycle import array_from_bytes

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
    vid = make_voice(vv, None, style, embedding, evidence=audio)
    with vv.db.session() as s:
        voice = s.get(Voice, vid)
        assert voice is not None and voice.consent_id is not None
        consent = s.get(Consent, voice.consent_id)
        assert consent is not None and consent.evidence_blob is not None
        stored = [voice.embedding_blob, voice.style_blob, consent.evidence_blob]
        whats = {"embedding": "embedding", "style": "style", "evidence": f"consents/{consent.id}"}
    payloads = {"embedding": embedding.tobytes(), "style": style.tobytes(), "evidence": audio}

    # Round trip first: the test would be meaningless if the data were not there at all.
    assert sorted(vv.blobs.list(f"voices/{vid}/")) == sorted(k for k in stored if k)
    for name, what in whats.items():
        opened = vv.voice_registry.get_sealed(vid, what)
        assert (array_from_bytes(opened).tobytes() if name != "evidence" else opened) == payloads[name]

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
