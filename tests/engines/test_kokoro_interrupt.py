"""Barge-in at the model: a cancelled stream's model call in flight is cut short (issue 28, item 3).

Real Kokoro (int8 with the fused kernels, what serves on CPU). A piece of ~380 phonemes is ~25 s of
speech, seconds of model time on any CPU; cancelled 0.1 s in, it cannot have finished, so getting
``Interrupted`` (and no audio) shows the call was cut short, not waited for.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from voxvault.engines.base import Interrupted, Interruptible
from voxvault.engines.kokoro import KokoroEngine
from voxvault.synthesis.admission import PieceScheduler
from voxvault.synthesis.pipeline import SpeechPipeline, VoiceStyle
from voxvault.text import TextFrontend

pytestmark = pytest.mark.slow

WORDS = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmpt ˌOvəɹ ðə lˈAzi dˈɔɡ "
LONG = (WORDS * 8)[:380].strip()
SHORT = "θˈæŋks, sˈi ju."
LONG_TEXT = "Okay. " + " ".join(
    f"Sentence number {n} of a long answer keeps the synthesiser busy a while" for n in range(1, 6)
)


def _cancel_after(seconds: float) -> threading.Event:
    cancel = threading.Event()
    threading.Timer(seconds, cancel.set).start()
    return cancel


def test_a_call_in_flight_stops_when_its_output_is_cancelled_and_the_engine_speaks_on(
    int8_engine: KokoroEngine,
) -> None:
    engine = int8_engine
    assert isinstance(engine, Interruptible)
    style = next(iter(engine.preset_styles().values()))
    before = engine.synthesize(SHORT, style)

    cancel = _cancel_after(0.1)
    with pytest.raises(Interrupted), engine.interrupted_by(cancel):
        engine.synthesize(LONG, style)

    # The session is not left broken, and a block whose event is never set changes nothing.
    with engine.interrupted_by(threading.Event()):
        during = engine.synthesize(SHORT, style)
    after = engine.synthesize(SHORT, style)
    np.testing.assert_allclose(during, before, atol=1e-5)
    np.testing.assert_allclose(after, before, atol=1e-5)
    # An event set before the call: nothing is spoken.
    gone = threading.Event()
    gone.set()
    with pytest.raises(Interrupted), engine.interrupted_by(gone):
        engine.synthesize(SHORT, style)


def test_a_stream_cancelled_during_a_piece_yields_nothing_more_and_frees_its_slot(
    int8_engine: KokoroEngine,
) -> None:
    scheduler = PieceScheduler(parallel=1)
    pipeline = SpeechPipeline(
        int8_engine, TextFrontend(max_phonemes=int8_engine.max_phonemes), scheduler=scheduler
    )
    voice = VoiceStyle("alpha", next(iter(int8_engine.preset_styles().values())))
    # No short first piece: after "Okay." comes one piece of ~300 phonemes (seconds of model time).
    prepared = pipeline.prepare(LONG_TEXT, voice, fmt="pcm", first_piece_phonemes=None)
    assert len(prepared.pieces) >= 2 and len(prepared.pieces[1].phonemes) > 250
    cancel = threading.Event()
    chunks = pipeline.timed_chunks(prepared, cancel)
    got = [next(chunks)]  # "Okay." and its pause
    assert got[0].piece is prepared.pieces[0] and got[0].speech_samples > 0
    threading.Timer(0.1, cancel.set).start()
    # Before: the piece in flight was finished and handed out, then the stream stopped. Now it is dropped.
    got += list(chunks)
    assert all(c.piece is prepared.pieces[0] for c in got)
    assert scheduler.running == 0 and scheduler.waiting == 0
    # The model is free for the next caller at once: a fresh stream renders its first piece.
    again = pipeline.timed_chunks(prepared, threading.Event())
    assert next(again).speech_samples > 0
    again.close()
