"""Helpers for the voice tests: a cloned voice row as enrollment writes it, and a target speaker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from voxvault.store.models import Consent, Voice, utcnow
from voxvault.voices.lifecycle import array_bytes


def make_voice(vv: Any, project: str, style: np.ndarray, embedding: np.ndarray) -> str:
    """A cloned voice row with sealed style and embedding, as enrollment writes them."""
    now = utcnow()
    with vv.db.session() as s:
        consent = Consent(
            project_id=project,
            speaker_name="Ada",
            purpose="tests",
            organization_name="Lab",
            script="...",
            challenge_hash="0" * 64,
            challenge_expires_at=now,
            status="verified",
            expires_at=now + dt.timedelta(days=30),
            recording_sha256=None,
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
        vid = voice.id
    reg = vv.voice_registry
    emb_key = reg.put_sealed(vid, "embedding", array_bytes(embedding))
    style_key = reg.put_sealed(vid, "style", array_bytes(style))
    with vv.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None
        row.embedding_blob, row.style_blob = emb_key, style_key
    return vid


@pytest.fixture(scope="session")
def target(vv: Any) -> np.ndarray:
    speech = vv.speak("Every morning I walk to the market and buy fresh bread.", voice="alpha", format="pcm")
    return np.asarray(vv.engines.speaker().embed(speech.samples, speech.sample_rate), dtype=np.float32)


@pytest.fixture(name="make_voice")
def make_voice_fixture() -> Callable[[Any, str, np.ndarray, np.ndarray], str]:
    return make_voice
