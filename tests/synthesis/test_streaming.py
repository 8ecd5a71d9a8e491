"""Streaming building blocks: text segmentation, the piece scheduler, admission, and the speech session."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from voxvault.audio import decode
from voxvault.errors import VoxError
from voxvault.synthesis.admission import Admission, PieceScheduler
from voxvault.synthesis.streaming import (
    DEFAULT_CHUNK_SCHEDULE,
    SpeechSession,
    TextSegmenter,
    check_schedule,
    trailing_pause_s,
)
from voxvault.text.frontend import CLAUSE_PAUSE, SENTENCE_PAUSE

PARAGRAPH = (
    "Dr. Smith arrived at nine, as planned. The meeting ran long; nobody minded much because the coffee "
    "was good and the agenda, for once, was short! Was it the best meeting of the year? Perhaps it was, "
    "though the budget discussion that followed went on and on without anybody reaching a conclusion "
    "about what to do next with the old warehouse by the river"
)


def feed(segmenter: TextSegmenter, pieces: list[str]) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        out += segmenter.push(piece)
    return out


# ------------------------------------------------------------------------------------------ segmenter
def test_sentence_is_released_once_complete_never_mid_word() -> None:
    seg = TextSegmenter()
    assert feed(seg, ["Hel", "lo wor", "ld."]) == []  # "." could still be "3.5" or "..."
    assert seg.push(" How") == ["Hello world."]
    assert seg.flush() == ["How"]


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    seg = TextSegmenter()
    assert seg.push("Dr. Smith met J. R. Tolkien today. ") == ["Dr. Smith met J. R. Tolkien today."]


def test_long_text_without_sentence_end_is_cut_at_words_short_first_then_longer() -> None:
    words = [f"word{i}" for i in range(14)]
    seg = TextSegmenter()
    segments = feed(seg, [w + " " for w in words * 6]) + seg.flush()
    assert " ".join(segments).split() == (words * 6)  # nothing lost, no word cut
    first, second = segments[0], segments[1]
    assert DEFAULT_CHUNK_SCHEDULE[0] <= len(first) + 1 < DEFAULT_CHUNK_SCHEDULE[1]
    assert len(second) + 1 >= DEFAULT_CHUNK_SCHEDULE[1]
    assert all(set(s.split()) <= set(words) for s in segments)


def test_clause_boundary_is_preferred_to_a_bare_word_boundary() -> None:
    seg = TextSegmenter(schedule=[30])
    out = seg.push("When the rain finally stopped, we walked down to the harbour and")
    # the clause end wins over the later word boundary; the rest, still over the threshold, is cut at a word
    assert out == ["When the rain finally stopped,", "we walked down to the harbour"]
    assert seg.buffered == len("and")


def test_flush_releases_partial_word_and_restarts_the_schedule() -> None:
    seg = TextSegmenter(schedule=[10, 100])
    assert seg.push("one two three four ") == ["one two three four"]
    assert seg.push("five six seven eig") == []  # the second threshold is 100
    assert seg.flush() == ["five six seven eig"]
    assert seg.push("nine ten eleven ") == ["nine ten eleven"]  # back to the first threshold


def test_trigger_releases_complete_words_only() -> None:
    seg = TextSegmenter()
    seg.push("the quick brown fo")
    assert seg.trigger() == ["the quick brown"]
    assert seg.buffered == len("fo")
    assert seg.trigger() == []


@pytest.mark.parametrize("seed", range(5))
def test_any_chunking_of_a_paragraph_gives_back_all_its_words(seed: int) -> None:
    rng = random.Random(seed)
    pieces, i = [], 0
    while i < len(PARAGRAPH):
        n = rng.randint(1, 12)
        pieces.append(PARAGRAPH[i : i + n])
        i += n
    seg = TextSegmenter()
    segments = feed(seg, pieces) + seg.flush()
    assert " ".join(segments).split() == PARAGRAPH.split()
    assert segments[0] == "Dr. Smith arrived at nine, as planned."


@pytest.mark.parametrize("bad", [[], [0], [1, 2], [50, 5000], "120", [50.5], [True], list(range(50, 70))])
def test_bad_chunk_schedules_are_refused(bad: object) -> None:
    with pytest.raises(VoxError) as info:
        check_schedule(bad)  # type: ignore[arg-type]
    assert info.value.code == "invalid_chunk_schedule"


def test_trailing_pause_follows_punctuation() -> None:
    assert trailing_pause_s("It ended.") == SENTENCE_PAUSE
    assert trailing_pause_s('He said "stop!"') == SENTENCE_PAUSE
    assert trailing_pause_s("First,") == CLAUSE_PAUSE
    assert trailing_pause_s("and then") == 0.0


# ------------------------------------------------------------------------------------------ scheduler
def test_scheduler_grants_earliest_deadline_first() -> None:
    sched = PieceScheduler(parallel=1)
    held = sched.acquire(0.0)
    assert held is not None
    order: list[str] = []

    def wait(name: str, deadline: float) -> None:
        ticket = sched.acquire(deadline)
        assert ticket is not None
        order.append(name)
        sched.release(ticket)

    late = threading.Thread(target=wait, args=("late", 10.0))
    early = threading.Thread(target=wait, args=("early", 1.0))
    late.start()
    while sched.waiting < 1:
        time.sleep(0.001)
    early.start()
    while sched.waiting < 2:
        time.sleep(0.001)
    sched.release(held)
    late.join(5)
    early.join(5)
    assert order == ["early", "late"]
    assert sched.running == 0 and sched.waiting == 0


def test_cancelled_waiter_leaves_the_queue() -> None:
    sched = PieceScheduler(parallel=1)
    held = sched.acquire(0.0)
    assert held is not None
    cancel = threading.Event()
    result: list[int | None] = []
    t = threading.Thread(target=lambda: result.append(sched.acquire(1.0, cancel)))
    t.start()
    while sched.waiting < 1:
        time.sleep(0.001)
    assert sched.lateness_s(now=3.0) == pytest.approx(2.0)
    cancel.set()
    t.join(5)
    assert result == [None]
    assert sched.waiting == 0 and sched.lateness_s() == 0.0
    sched.release(held)
    assert sched.running == 0


def test_scheduler_learns_cost_and_predicts_waits() -> None:
    sched = PieceScheduler(parallel=2)
    assert sched.expected_wait_s(100) == 0.0  # nothing measured yet: no reason to refuse
    with sched.slot(0.0, cost=10):
        time.sleep(0.05)
    spc = sched.seconds_per_cost
    assert spc is not None and spc >= 0.004
    # 100 units of new work, nothing else due: shared by two slots
    assert sched.expected_wait_s(100) == pytest.approx(100 * spc / 2)
    # work that is due makes the wait longer; work due later (a stream with audio in hand) does not
    held = [sched.acquire(0.0, cost=1), sched.acquire(0.0, cost=1)]
    blocked = threading.Thread(target=lambda: sched.release(sched.acquire(0.0, cost=50) or 0))
    blocked.start()
    future = threading.Thread(
        target=lambda: sched.release(sched.acquire(time.perf_counter() + 60, cost=500) or 0)
    )
    future.start()
    while sched.waiting < 2:
        time.sleep(0.001)
    assert sched.expected_wait_s(100) >= 150 * spc / 2 - 1e-9
    assert sched.expected_wait_s(100) < 600 * spc / 2
    for ticket in held:
        assert ticket is not None
        sched.release(ticket)
    blocked.join(5)
    future.join(5)
    assert sched.running == 0 and sched.waiting == 0


def test_admission_refuses_when_full_or_first_audio_would_be_late() -> None:
    wait = [0.0]
    starting: list[int] = []

    def expected(n: int) -> float:
        starting.append(n)
        return wait[0]

    adm = Admission(1, 1, retry_after_s=2, expected_wait=expected, max_first_audio_s=1.0)
    adm.reserve()
    wait[0] = 5.0
    with pytest.raises(VoxError) as info:
        adm.reserve()
    assert (info.value.code, info.value.status, info.value.details["retry_after"]) == ("server_busy", 429, 2)
    assert starting == [2]  # the admitted request that has not started yet, and the new one
    wait[0] = 0.0
    with adm.running():
        adm.reserve()
        assert starting[-1] == 1
        with pytest.raises(VoxError):
            adm.reserve()  # capacity 2
    adm.release()
    adm.release()
    assert adm.admitted == 0
    wait[0] = 5.0
    adm.reserve()  # an idle server always admits: the estimate only refuses extra load
    adm.release()


# ------------------------------------------------------------------------------------------ session
@pytest.fixture(scope="module")
def pipeline(vv):  # type: ignore[no-untyped-def]
    return vv.pipeline


@pytest.fixture(scope="module")
def voice(vv):  # type: ignore[no-untyped-def]
    return vv.catalog.resolve("alpha")


@pytest.mark.slow
def test_session_renders_segments_into_one_stream_with_word_timings(pipeline, voice) -> None:  # type: ignore[no-untyped-def]
    session = SpeechSession(pipeline, voice, fmt="pcm")
    chunks = []
    for text in ("Hello there, my friend.", "It is a fine day."):
        prepared = session.prepare(text)
        assert prepared is not None
        chunks += list(session.speak(prepared, original=text, pause_after_s=trailing_pause_s(text)))
    chunks.append(session.finish())
    pcm = b"".join(c.audio for c in chunks)
    seconds = len(pcm) / 2 / 24000
    assert seconds == pytest.approx(session.audio_s, abs=0.01)
    assert 2.0 < seconds < 10.0

    words = [w for c in chunks for w in c.words]
    assert [w.word for w in words] == ["Hello", "there,", "my", "friend.", "It", "is", "a", "fine", "day."]
    starts = [w.start_ms for w in words]
    assert starts == sorted(starts)
    assert all(w.start_ms < w.end_ms <= seconds * 1000 + 1 for w in words)
    # the second sentence starts after the first one's closing pause
    assert words[4].start_ms - words[3].end_ms >= SENTENCE_PAUSE * 1000 * 0.9

    aligned = [c for c in chunks if c.normalized_alignment is not None]
    assert "".join("".join(c.normalized_alignment.chars) for c in aligned).replace(" ", "") == (  # type: ignore[union-attr]
        "Hellothere,myfriend.Itisafineday."
    )
    for c in aligned:
        al = c.normalized_alignment
        assert al is not None and len(al.chars) == len(al.starts_ms) == len(al.durations_ms)
        assert min(al.starts_ms) >= 0
        assert al.starts_ms == sorted(al.starts_ms)
        # relative to the chunk: within (about) the audio this chunk carries and the piece's tail
        assert max(al.starts_ms) <= len(c.audio) / 2 / 24000 * 1000 + 100


@pytest.mark.slow
def test_session_alignment_keeps_the_clients_own_text_when_words_match(pipeline, voice) -> None:  # type: ignore[no-untyped-def]
    session = SpeechSession(pipeline, voice, fmt="pcm")
    prepared = session.prepare("Meet me at 10:30 please.")
    assert prepared is not None
    chunks = [c for c in session.speak(prepared, original="Meet me at 10:30 please.") if c.alignment]
    # "10:30" became "ten thirty": the written word takes the time of both spoken words
    written = " ".join("".join(c.alignment.chars) for c in chunks if c.alignment and c.alignment.chars)
    spoken = " ".join(
        "".join(c.normalized_alignment.chars)
        for c in chunks
        if c.normalized_alignment and c.normalized_alignment.chars
    )
    assert written == "Meet me at 10:30 please."
    assert "ten thirty" in spoken
    session = SpeechSession(pipeline, voice, fmt="pcm")
    prepared = session.prepare("Good morning, Anna.")
    assert prepared is not None
    said = [c for c in session.speak(prepared, original="Good morning, Anna.") if c.alignment]
    # (a short first piece may end at the comma: the written text then spans two chunks)
    assert " ".join("".join(c.alignment.chars) for c in said if c.alignment) == "Good morning, Anna."


@pytest.mark.slow
def test_session_mp3_chunks_concatenate_to_one_playable_file(pipeline, voice) -> None:  # type: ignore[no-untyped-def]
    session = SpeechSession(pipeline, voice, fmt="mp3", sample_rate=44100, bitrate=64_000)
    data = b""
    for text in ("One two three.", "Four five six."):
        prepared = session.prepare(text)
        assert prepared is not None
        data += b"".join(c.audio for c in session.speak(prepared))
    data += session.finish().audio
    audio = decode(data, max_bytes=10_000_000, max_seconds=60, target_sr=16000)
    assert audio.source_format == "mp3"
    assert audio.duration == pytest.approx(session.audio_s, abs=0.2)


@pytest.mark.slow
def test_nothing_speakable_is_skipped_and_cancel_stops_rendering(pipeline, voice) -> None:  # type: ignore[no-untyped-def]
    session = SpeechSession(pipeline, voice, fmt="pcm")
    assert session.prepare("🙂 ...") is None
    prepared = session.prepare("One. Two. Three. Four. Five. Six.")
    assert prepared is not None and len(prepared.pieces) >= 2
    pieces = session.speak(prepared)
    first = next(pieces)
    assert first.words
    session.cancel.set()
    rest = list(pieces)
    assert sum(len(c.words) for c in rest) == 0  # no further piece was rendered
    assert pipeline.scheduler.running == 0


@pytest.mark.slow
def test_session_refuses_bad_output_settings(vv) -> None:  # type: ignore[no-untyped-def]
    voice = vv.catalog.resolve("alpha")
    for kwargs, code in (
        ({"fmt": "m4b"}, "unsupported_format"),
        ({"speed": 9.0}, "invalid_speed"),
        ({"sample_rate": 12345}, "invalid_sample_rate"),
    ):
        with pytest.raises(VoxError) as info:
            SpeechSession(vv.pipeline, voice, **kwargs)
        assert info.value.code == code


def test_silence_only_audio_gets_no_word_timings() -> None:
    from voxvault.synthesis.streaming import estimate_word_timings
    from voxvault.text import Piece

    piece = Piece(text="hello world", phonemes="həlˈoʊ wˈɜːld", pause_after=0.0, speed=1.0)
    assert estimate_word_timings(piece, np.zeros(0, np.float32), 24000) == []
    speech = np.zeros(24000, np.float32)
    speech[6000:18000] = 0.5
    timings = estimate_word_timings(piece, speech, 24000)
    assert [w for w, _, _ in timings] == ["hello", "world"]
    assert timings[0][1] == pytest.approx(0.25, abs=0.01)
    assert timings[-1][2] == pytest.approx(0.75, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("text", "budget", "first"),
    [
        ("Thanks for calling the clinic, your appointment is confirmed.", 20, "Thanks for calling"),
        ("Thanks for calling the clinic, your appointment is confirmed.", 12, "Thanks"),
        ("We received your request to update the delivery address on the order.", 12, "We received"),
        # a phrase's opening words are not a first piece on their own: the next word comes with them
        ("The technician who visited you yesterday reported a fault.", 8, "The technician"),
        ("To reset your password open the settings page.", 4, "To reset"),
        # a word longer than the budget is the first piece whole, not cut in two model calls
        ("Absolutely, I will send it now.", 8, "Absolutely,"),
    ],
)
def test_a_first_piece_cut_inside_a_clause_ends_before_a_phrase_not_on_its_opening_word(
    pipeline, voice, text: str, budget: int, first: str
) -> None:  # type: ignore[no-untyped-def]
    streamed = pipeline.prepare(text, voice, fmt="pcm", first_piece_phonemes=budget).pieces
    assert streamed[0].text == first
    assert len(streamed[0].phonemes.split()) == len(first.split())
    whole = pipeline.prepare(text, voice, fmt="pcm", first_piece_phonemes=None).pieces
    assert " ".join(p.text for p in streamed).split() == " ".join(p.text for p in whole).split()
    assert all(len(p.text.split()) == len(p.phonemes.split()) for p in streamed[:2])


@pytest.mark.parametrize(
    "text",
    [
        "Sure, I can help with that. Your order shipped this morning and should arrive on Thursday.",
        "The committee will meet on Tuesday morning to review the budget, and every member should bring "
        "their notes and questions about the new building by the river.",
        "That is a great question.",
        "The next train to the airport leaves from platform two at a quarter past four, and it is on time.",
        "Your appointment with Doctor Patel has been moved to Thursday afternoon at three, does that work?",
    ],
)
def test_streamed_pieces_start_short_and_grow(pipeline, voice, text: str) -> None:  # type: ignore[no-untyped-def]
    from voxvault.synthesis.pipeline import FIRST_PIECE_PHONEMES, PHRASE_OPENERS, PIECE_GROWTH, RAMP_TOLERANCE

    streamed = pipeline.prepare(text, voice, fmt="pcm", first_piece_phonemes=FIRST_PIECE_PHONEMES).pieces
    whole = pipeline.prepare(text, voice, fmt="pcm", first_piece_phonemes=None).pieces
    # every word is still spoken, in order, and the last piece still ends the text
    assert " ".join(p.text for p in streamed).split() == " ".join(p.text for p in whole).split()
    assert streamed[-1].pause_after == whole[-1].pause_after
    # the first piece is short, or one word, or a phrase's opening words and the word after them
    first_words = streamed[0].text.split()
    limit = float(FIRST_PIECE_PHONEMES)
    if len(first_words) > 1 and all(w.lower() in PHRASE_OPENERS for w in first_words[:-1]):
        limit = max(limit, float(len(streamed[0].phonemes)))  # the pieces grow from there
    assert len(streamed[0].phonemes) <= RAMP_TOLERANCE * limit or len(first_words) == 1, streamed
    for i, piece in enumerate(streamed):
        assert len(piece.phonemes) <= RAMP_TOLERANCE * limit or limit >= pipeline.frontend.max_phonemes, (
            i,
            piece,
        )
        limit *= PIECE_GROWTH
    # no piece cut inside a clause ends on a word that opens a phrase ("train to the | airport")
    for piece in streamed[:-1]:
        if piece.pause_after == 0.0:
            assert piece.text.split()[-1].lower() not in PHRASE_OPENERS, streamed
    # no sentence ends in a piece of its own single word
    assert all(len(p.text.split()) > 1 for p in streamed[:-1] if p.pause_after >= 0.3)
