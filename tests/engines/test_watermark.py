"""The audio watermark: payloads come back from marked speech (whole, cut, chunked, compressed), never from
unmarked audio or a mark whose CRC does not match, and bad input to detection is refused with a code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxvault.audio import decode, encode
from voxvault.engines.watermark import StreamEmbedder, Watermarker, coding
from voxvault.engines.watermark.layout import Layout
from voxvault.errors import VoxError

SR = 24000
PAYLOAD = 0xC0FFEE42
SPEAKERS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "speakers"
CLIPS = sorted(SPEAKERS.glob("en_*.wav")) if SPEAKERS.is_dir() else []
needs_testdata = pytest.mark.skipif(not CLIPS, reason=f"real speech clips not found at {SPEAKERS}")


@pytest.fixture(scope="module")
def marker() -> Watermarker:
    return Watermarker()


def _speech(seconds: float, first: int = 0) -> np.ndarray:
    """Real speech of the given length: the test speakers one after another, with short pauses."""
    parts: list[np.ndarray] = []
    clips = CLIPS
    i = first
    while sum(len(p) for p in parts) < seconds * SR:
        audio = decode(clips[i % len(clips)], max_bytes=10**8, max_seconds=60).samples
        parts += [audio, np.zeros(int(0.15 * SR), np.float32)]
        i += 1
    x = np.concatenate(parts)[: int(seconds * SR)]
    return (x * (0.1 / np.sqrt(np.mean(x**2)))).astype(np.float32)  # about -20 dBFS RMS, like TTS output


@pytest.fixture(scope="module")
def speech8() -> np.ndarray:
    return _speech(8.0)


@pytest.fixture(scope="module")
def marked8(marker: Watermarker, speech8: np.ndarray) -> np.ndarray:
    return marker.embed(speech8, SR, PAYLOAD)


@needs_testdata
def test_marked_speech_gives_back_its_payload_and_is_only_slightly_changed(
    marker: Watermarker, speech8: np.ndarray, marked8: np.ndarray
) -> None:
    det = marker.detect(marked8, SR)
    assert det.present and det.payload == PAYLOAD
    assert det.false_alarm_bound <= 1e-6
    assert len(marked8) == len(speech8) and marked8.dtype == np.float32
    snr = 10 * np.log10(np.sum(speech8**2) / np.sum((marked8 - speech8) ** 2))
    assert snr > 8.0  # a level change of a few dB in narrow bands, not a rewrite of the signal


@needs_testdata
def test_any_two_and_a_half_seconds_from_the_middle_decode(marker: Watermarker, marked8: np.ndarray) -> None:
    for start_s in (2.0, 3.37):
        excerpt = marked8[int(start_s * SR) : int((start_s + 2.5) * SR)]
        det = marker.detect(excerpt, SR)
        assert det.present and det.payload == PAYLOAD, start_s


@needs_testdata
def test_chunked_streaming_keeps_lengths_and_decodes_like_the_whole_file(
    marker: Watermarker, speech8: np.ndarray, marked8: np.ndarray
) -> None:
    rng = np.random.default_rng(4)
    embedder = marker.embedder(PAYLOAD, SR)
    out, offset = [], 0
    while offset < len(speech8):
        size = int(rng.uniform(0.3, 2.0) * SR)
        chunk = speech8[offset : offset + size]
        marked = embedder.process(chunk, offset)
        assert len(marked) == len(chunk)
        out.append(marked)
        offset += len(chunk)
    streamed = np.concatenate(out)
    assert len(streamed) == len(speech8)
    det = marker.detect(streamed, SR)
    assert det.present and det.payload == PAYLOAD
    # The same mark as the whole file's, give or take the frames at chunk boundaries.
    whole_mark = np.sum((marked8 - speech8) ** 2)
    assert np.sum((streamed - marked8) ** 2) < 0.15 * whole_mark
    assert 0.6 * whole_mark < np.sum((streamed - speech8) ** 2) < 1.1 * whole_mark


@needs_testdata
def test_mp3_at_32_kbps_and_telephone_rate_keep_the_payload(marker: Watermarker, marked8: np.ndarray) -> None:
    mp3 = encode(marked8, SR, "mp3", bitrate=32000)
    back = decode(mp3, max_bytes=10**7, max_seconds=60)
    det = marker.detect(back.samples, back.sample_rate)
    assert det.present and det.payload == PAYLOAD
    phone = decode(encode(marked8, SR, "wav", out_sample_rate=8000), max_bytes=10**7, max_seconds=60)
    assert phone.sample_rate == 8000
    det = marker.detect(phone.samples, 8000)
    assert det.present and det.payload == PAYLOAD


@needs_testdata
def test_unmarked_speech_and_noise_are_reported_absent(marker: Watermarker) -> None:
    speech = _speech(5.0, first=2)
    det = marker.detect(speech, SR)
    assert not det.present and det.payload is None and det.confidence == 0.0
    noise = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32) * 0.1
    assert not marker.detect(noise, SR).present
    assert not marker.detect(np.zeros(2 * SR, np.float32), SR).present


@needs_testdata
def test_a_mark_whose_crc_does_not_match_is_never_reported(marker: Watermarker, speech8: np.ndarray) -> None:
    layout = marker.layout
    message = coding.message_bits(PAYLOAD, layout.scrambler)
    message[-1] ^= 1  # the last CRC bit flipped: a perfectly readable mark of an invalid message
    symbols = layout.frame_pattern(coding.conv_encode(message))
    forged = StreamEmbedder(symbols, SR, marker.strength).process(speech8, 0)
    det = marker.detect(forged, SR)
    assert not det.present and det.payload is None


@needs_testdata
def test_another_key_does_not_see_the_mark(marked8: np.ndarray) -> None:
    assert not Watermarker(key=b"someone else").detect(marked8, SR).present


def test_silence_stays_silent_and_chunks_shorter_than_a_frame_pass_through(marker: Watermarker) -> None:
    embedder = marker.embedder(1, SR)
    assert not np.any(embedder.process(np.zeros(SR, np.float32), 0))
    tiny = np.full(100, 0.1, np.float32)
    assert np.array_equal(embedder.process(tiny, 12345), tiny)


def test_crc_and_convolutional_code_round_trip() -> None:
    scrambler = Layout.from_key(b"k").scrambler
    message = coding.message_bits(123456789, scrambler)
    coded = coding.conv_encode(message)
    assert len(coded) == coding.CODED_BITS
    soft = 1.0 - 2.0 * coded.astype(float)
    soft[::9] *= -1  # 14 of 124 coded bits wrong
    assert coding.check_message(coding.viterbi_decode(soft, coding.MESSAGE_BITS), scrambler) == 123456789
    best = coding.list_viterbi_decode(soft, coding.MESSAGE_BITS, 4)
    assert np.array_equal(best[0], message)
    message[3] ^= 1
    assert coding.check_message(message, scrambler) is None


@pytest.mark.parametrize(
    ("audio", "rate", "code", "status"),
    [
        (np.zeros(SR, np.float32), SR, "audio_too_short", 400),
        (np.zeros(int(1.4 * 8000), np.float32), 8000, "audio_too_short", 400),
        (np.full(2 * SR, np.nan, np.float32), SR, "invalid_audio", 400),
        (np.array(["not", "audio"]), SR, "invalid_audio", 400),
        (np.zeros((2, 2, SR), np.float32), SR, "invalid_audio", 400),
        (np.zeros(2 * SR, np.float32), 0, "invalid_sample_rate", 400),
        (np.zeros(2 * SR, np.float32), 1000, "invalid_sample_rate", 400),
    ],
)
def test_bad_input_to_detection_is_refused_with_a_code(
    marker: Watermarker, audio: np.ndarray, rate: int, code: str, status: int
) -> None:
    with pytest.raises(VoxError) as err:
        marker.detect(audio, rate)
    assert err.value.code == code and err.value.status == status


def test_huge_input_is_refused_before_any_analysis() -> None:
    small = Watermarker(max_seconds=5.0)
    with pytest.raises(VoxError) as err:
        small.detect(np.zeros(6 * 8000, np.float32), 8000)
    assert err.value.code == "audio_too_long" and err.value.status == 413


@pytest.mark.parametrize("payload", [-1, 1 << 32, 2.5, True])
def test_payload_must_be_a_32_bit_integer(marker: Watermarker, payload: object) -> None:
    with pytest.raises(VoxError) as err:
        marker.embedder(payload, SR)  # type: ignore[arg-type]
    assert err.value.code == "invalid_payload"


def test_stereo_and_integer_pcm_are_accepted(marker: Watermarker) -> None:
    stereo = (np.random.default_rng(1).standard_normal((2, 2 * SR)) * 3000).astype(np.int16)
    assert not marker.detect(stereo, SR).present
