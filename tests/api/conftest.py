"""Fixtures the API tests share."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import SPEAKERS

from voxvault.engines.whisper import SAMPLE_RATE
from voxvault.voices.script_heard import HeardScores

#: OpenAI's name for the small transcriber (Whisper tiny.en), where which model hears does not matter.
TINY = "gpt-4o-mini-transcribe"


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """16-bit PCM WAV of ``samples`` (clipped to [-1, 1]), repeated on ``channels`` channels."""
    buffer = io.BytesIO()
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm[:, None], channels, axis=1).tobytes())
    return buffer.getvalue()


def three_turns() -> tuple[np.ndarray, tuple[float, float]]:
    """James, Andrew, then James again with 0.5 s silences between (16 kHz), and Andrew's span in seconds."""
    from voxvault.audio.io import decode

    def voice(name: str) -> np.ndarray:
        path = SPEAKERS / f"{name}.wav"
        return decode(path, max_bytes=10_000_000, max_seconds=60, target_sr=SAMPLE_RATE).samples

    james, andrew = voice("en_james"), voice("en_andrew")
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    half = len(james) // 2
    mix = np.concatenate([james[:half], gap, andrew, gap, james[half:]])
    return mix, ((half + len(gap)) / SAMPLE_RATE, (half + len(gap) + len(andrew)) / SAMPLE_RATE)


@pytest.fixture(scope="session")
def james() -> Path:
    """A 4.7-second real recording of one speaker (../shared/testdata/speakers)."""
    return SPEAKERS / "en_james.wav"


@pytest.fixture(scope="module")
def openai_client(live_server: str, admin_key: str) -> Any:
    """The official ``openai`` client, unchanged, pointed at the module's live server."""
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=live_server + "/v1", api_key=admin_key, max_retries=0)


@pytest.fixture
def paced_tts(vv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each piece takes at least 40 ms, as a real model's does: on the fake engine a whole answer could be
    rendered into the socket before the client reads its first bytes, leaving nothing to drop."""
    import time as _time

    engine = vv.engines.tts()
    for name in ("synthesize", "synthesize_timed"):
        original = getattr(engine, name, None)
        if original is None:
            continue

        def paced(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            _time.sleep(0.04)
            return _original(*args, **kwargs)

        monkeypatch.setattr(engine, name, paced)


class ScriptHeard:
    """The script check, passing: for tests about the speaker checks, which run after it. A synthetic
    reading of a fresh random code is heard by Whisper now and then with a word wrong (0.6 recall), which
    would refuse the enrollment before the check under test; Whisper's judgement of readings is tested in
    test_consent_attacks.py and measured by make bench-consent."""

    def check(self, audio: Any, **_: Any) -> HeardScores:
        return HeardScores(statement_recall=1.0)
