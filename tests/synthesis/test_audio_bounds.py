"""SSML pause amplification (security audit, finding 1): a few hundred bytes must not render minutes of
audio as one array, and no request may render more audio than ``max_audio_seconds``.

The audit's two reproductions: 25 ``<break time="10s"/>`` after one word (492 bytes, 251 s of audio as one
array, +490 MB RSS), and 1,000 such breaks inside the 20,000-character limit (OOM-killed at 15 GB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from voxvault.errors import VoxError
from voxvault.service import VoxVault
from voxvault.synthesis.pipeline import AUDIO_LIMIT_SLACK, PAUSE_CHUNK_S, estimate_audio_s

pytestmark = pytest.mark.slow

BREAK = '<break time="10s"/>'
# 492 bytes: one word and 25 ten-second breaks (the audit's request).
SMALL_BOMB = "<speak>Hi" + BREAK * 25 + "</speak>"
# 1,000 breaks (10,000 s), inside the 20,000-character input limit.
BIG_BOMB = "<speak>Hi" + BREAK * 1000 + "</speak>"
# Fewer breaks than the count limit, but more audio than max_audio_seconds (3600 s by default).
LONG_BOMB = "<speak>" + ("Go." + BREAK) * 400 + "</speak>"


def test_the_reproductions_are_what_the_audit_sent() -> None:
    assert len(SMALL_BOMB.encode()) == 492
    assert len(BIG_BOMB) < 20_000 and BIG_BOMB.count("<break") == 1000


def test_a_pause_bomb_is_rendered_as_bounded_chunks_of_silence(vv: VoxVault) -> None:
    prepared = vv.pipeline.prepare(SMALL_BOMB, vv.catalog.resolve("alpha"), fmt="pcm")
    sr = vv.pipeline.tts.sample_rate
    lengths = [len(chunk) for chunk in vv.pipeline.raw_chunks(prepared)]
    # The 250 s of silence never exist as one array: no chunk holds more than the word and one pause chunk.
    assert max(lengths) <= 3 * sr + PAUSE_CHUNK_S * sr, max(lengths) / sr
    # ... and nothing is lost: all of it is still rendered, in order.
    assert 250.0 <= sum(lengths) / sr <= 253.0
    assert prepared.estimated_audio_s >= 250.0


def test_thousand_breaks_are_refused_before_anything_is_rendered(vv: VoxVault) -> None:
    calls: list[object] = []
    original = vv.pipeline.tts.synthesize

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    vv.pipeline.tts.synthesize = counting  # type: ignore[method-assign]
    try:
        with pytest.raises(VoxError) as err:
            vv.pipeline.prepare(BIG_BOMB, vv.catalog.resolve("alpha"), fmt="pcm")
    finally:
        del vv.pipeline.tts.synthesize
    assert err.value.code == "too_many_breaks" and err.value.status == 413
    assert str(vv.settings.max_ssml_breaks) in err.value.message
    assert calls == []


def test_more_audio_than_the_limit_is_refused_up_front_naming_the_limit(vv: VoxVault) -> None:
    with pytest.raises(VoxError) as err:
        vv.pipeline.prepare(LONG_BOMB, vv.catalog.resolve("alpha"), fmt="pcm")
    assert err.value.code == "audio_too_long" and err.value.status == 413
    assert "max_audio_seconds" in err.value.message and "3600" in err.value.message


def test_the_limit_is_generous_for_real_text(vv: VoxVault) -> None:
    """20,000 characters of ordinary prose plan well inside the default limit, even spoken slowly."""
    sentence = "The quick brown fox jumps over the lazy dog near the river bank, and then it rests. "
    text = (sentence * (20_000 // len(sentence)))[:20_000]
    prepared = vv.pipeline.prepare(text, vv.catalog.resolve("alpha"), fmt="pcm", speed=0.5)
    assert prepared.estimated_audio_s < vv.settings.max_audio_seconds


@pytest.mark.parametrize("voice", ["kumo", "nezumi"])
def test_a_request_the_estimate_admits_is_never_cut_off(vv: VoxVault, voice: str) -> None:
    """The estimate decides up front; the backstop while rendering sits AUDIO_LIMIT_SLACK above it, so it
    must cover real speech within that slack (and not overestimate wildly either)."""
    style = vv.catalog.resolve(voice)
    texts = ("Dr. Smith paid $3.50 on 2026-11-22.", "Oh! Hm. Yes.", "Strength.", "Well, well. " * 6)
    for text in texts:
        for speed in (0.5, 1.0, 2.0):
            prepared = vv.pipeline.prepare(text, style, fmt="pcm", speed=speed)
            rendered = sum(len(c) for c in vv.pipeline.raw_chunks(prepared)) / vv.pipeline.tts.sample_rate
            estimated = prepared.estimated_audio_s
            assert rendered <= estimated * AUDIO_LIMIT_SLACK, (text, speed, rendered, estimated)
            assert estimated <= 2 * rendered + 1.0, (text, speed, rendered, estimated)
            assert estimated == pytest.approx(estimate_audio_s(prepared.pieces, speed))


def test_rendering_stops_if_the_audio_runs_past_the_limit(vv: VoxVault) -> None:
    """The up-front estimate is the refusal; this is the backstop should a model ever speak far longer."""
    prepared = vv.pipeline.prepare(SMALL_BOMB, vv.catalog.resolve("alpha"), fmt="pcm")
    limit = vv.pipeline.max_audio_s
    vv.pipeline.max_audio_s = 60.0
    try:
        with pytest.raises(VoxError) as err:
            for _ in vv.pipeline.raw_chunks(prepared):
                pass
    finally:
        vv.pipeline.max_audio_s = limit
    assert err.value.code == "audio_too_long"


def test_batch_items_are_checked_by_the_same_limits(vv: VoxVault, tmp_path: Path) -> None:
    from voxvault.jobs.sinks import open_sink
    from voxvault.jobs.spec import BatchItem
    from voxvault.jobs.worker import BatchWorker, WorkerOptions

    worker = BatchWorker(vv, open_sink(str(tmp_path)), WorkerOptions(default_voice="alpha"))
    for text, code in ((BIG_BOMB, "too_many_breaks"), (LONG_BOMB, "audio_too_long")):
        result = worker.prepare(BatchItem(id="bomb", text=text))
        assert result.failure is not None and result.failure.code == code


def test_cli_say_refuses_a_pause_bomb(vv: VoxVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from voxvault.cli import app

    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(vv.settings.resolved_cache_dir))
    out = tmp_path / "bomb.wav"
    result = CliRunner().invoke(app, ["say", BIG_BOMB, "-o", str(out)])
    assert result.exit_code != 0
    assert "too_many_breaks" in result.output
    assert not out.exists()


def test_silence_chunks_are_fresh_arrays(vv: VoxVault) -> None:
    """Hooks (the watermark) may write into a chunk; silence chunks must not share one buffer."""
    prepared = vv.pipeline.prepare("<speak>Hi" + BREAK * 2 + "</speak>", vv.catalog.resolve("alpha"))
    chunks = list(vv.pipeline.raw_chunks(prepared))
    assert len(chunks) > 2
    chunks[-1][:] = 1.0
    assert not np.any(chunks[-2][-10:] == 1.0)
