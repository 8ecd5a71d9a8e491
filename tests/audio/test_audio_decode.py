"""Decoding uploads: every common container, downmixing, resampling and every refusal."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from voxvault.audio import decode, encode
from voxvault.errors import VoxError

LIMITS = {"max_bytes": 10_000_000, "max_seconds": 60.0}

# (container, codec) pairs a user might upload; written stereo at 44.1/48 kHz so decode must downmix.
INPUTS = [
    ("wav", "pcm_s16le", 44_100, "wav"),
    ("aiff", "pcm_s16be", 44_100, "aiff"),
    ("flac", "flac", 44_100, "flac"),
    ("mp3", "libmp3lame", 44_100, "mp3"),
    ("ogg", "libopus", 48_000, "ogg"),
    ("webm", "libopus", 48_000, "matroska"),
    ("matroska", "flac", 44_100, "matroska"),
    ("ipod", "aac", 44_100, "mp4"),  # .m4a
    ("mp4", "aac", 48_000, "mp4"),
    ("adts", "aac", 44_100, "aac"),
]


@pytest.mark.parametrize(("container", "codec", "sr", "reported"), INPUTS)
def test_decodes_each_input_format_to_mono_at_the_requested_rate(
    container, codec, sr, reported, tone, dominant_frequency, make_container
):
    left = tone(440.0, 0.5, sr)
    data = make_container(container, codec, [left, left], sr)

    audio = decode(data, target_sr=16_000, **LIMITS)

    assert audio.samples.ndim == 1 and audio.samples.dtype == np.float32
    assert audio.sample_rate == 16_000
    assert audio.source_sample_rate == sr
    assert audio.channels == 2
    assert audio.source_format == reported
    assert audio.duration == pytest.approx(0.5, abs=0.1)  # lossy codecs add a frame or two of padding
    assert audio.duration == pytest.approx(audio.samples.size / 16_000)
    assert dominant_frequency(audio.samples, 16_000) == pytest.approx(440.0, abs=3.0)
    assert np.abs(audio.samples).max() <= 1.0


def test_stereo_is_averaged_to_mono(tone, make_container):
    left = tone(440.0, 0.2, 8_000, amplitude=0.8)
    data = make_container("wav", "pcm_s16le", [left, np.zeros_like(left)], 8_000)

    audio = decode(data, **LIMITS)

    assert audio.sample_rate == 8_000  # no target: the source rate
    assert np.abs(audio.samples).max() == pytest.approx(0.4, abs=0.01)


def test_real_speech_clip_decodes_from_path_and_bytes(speaker_clips):
    clip = speaker_clips[0]
    from_path = decode(clip, **LIMITS)
    from_str = decode(str(clip), **LIMITS)
    from_bytes = decode(clip.read_bytes(), **LIMITS)

    assert from_path.sample_rate == 24_000 and from_path.channels == 1
    assert from_path.source_format == "wav" and from_path.codec == "pcm_s16le"
    assert 4.0 <= from_path.duration <= 7.5
    assert np.array_equal(from_path.samples, from_bytes.samples)
    assert np.array_equal(from_path.samples, from_str.samples)
    assert np.sqrt(np.mean(from_path.samples**2)) > 0.01  # speech, not silence


def test_real_clip_resamples_to_16k(speaker_clips):
    native = decode(speaker_clips[1], **LIMITS)
    audio = decode(speaker_clips[1], target_sr=16_000, **LIMITS)
    assert audio.sample_rate == 16_000
    assert audio.samples.size == pytest.approx(native.samples.size * 2 / 3, abs=2)


@pytest.mark.parametrize(
    "junk",
    [
        b"hello, this is certainly not audio\n" * 40,
        b"\x89PNG\r\n\x1a\n" + bytes(300),
        np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
        # An HLS playlist must never make FFmpeg open local files or URLs.
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
    ],
    ids=["text", "png", "random", "hls-playlist"],
)
def test_non_audio_is_refused_as_invalid_audio(junk):
    with pytest.raises(VoxError) as info:
        decode(junk, **LIMITS)
    assert info.value.code == "invalid_audio"
    assert info.value.status == 415


def test_refusal_for_a_file_path_does_not_leak_the_path(tmp_path: Path):
    bogus = tmp_path / "secret-location" / "upload.wav"
    bogus.parent.mkdir()
    bogus.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)

    with pytest.raises(VoxError) as info:
        decode(bogus, **LIMITS)
    assert info.value.code == "invalid_audio"
    assert "secret-location" not in info.value.message and str(tmp_path) not in info.value.message


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus", "aac"])
def test_truncated_to_its_first_bytes_is_invalid_audio(fmt, tone):
    data = encode(tone(440.0, 1.0), 24_000, fmt)
    with pytest.raises(VoxError) as info:
        decode(data[:20], **LIMITS)
    assert info.value.code == "invalid_audio"
    assert info.value.status in (415, 422)


def test_wav_header_without_samples_is_invalid_audio(tone):
    data = encode(tone(440.0, 0.1), 24_000, "wav")
    with pytest.raises(VoxError) as info:
        decode(data[:44], **LIMITS)
    assert info.value.code == "invalid_audio"


def test_flac_with_a_scrambled_body_is_invalid_audio(tone):
    data = bytearray(encode(tone(440.0, 1.0), 24_000, "flac"))
    data[200:] = np.random.default_rng(1).integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    with pytest.raises(VoxError) as info:
        decode(bytes(data), **LIMITS)
    assert info.value.code == "invalid_audio"


def test_truncated_mp3_keeps_the_audio_that_is_there(tone):
    data = encode(tone(440.0, 1.0), 24_000, "mp3")
    audio = decode(data[: len(data) // 2], **LIMITS)
    assert 0.3 < audio.duration < 0.7


@pytest.mark.parametrize("data", [b"", None], ids=["empty-bytes", "empty-file"])
def test_empty_input_is_invalid_audio(data, tmp_path: Path):
    if data is None:
        data = tmp_path / "empty.wav"
        data.write_bytes(b"")
    with pytest.raises(VoxError) as info:
        decode(data, **LIMITS)
    assert info.value.code == "invalid_audio"


def test_missing_file_and_directory_are_invalid_audio(tmp_path: Path):
    for source in (tmp_path / "nope.wav", tmp_path):
        with pytest.raises(VoxError) as info:
            decode(source, **LIMITS)
        assert info.value.code == "invalid_audio"


def test_file_without_an_audio_stream_is_invalid_audio():
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    with pytest.raises(VoxError) as info:
        decode(buffer.getvalue(), **LIMITS)
    assert info.value.code == "invalid_audio"
    assert "no audio stream" in info.value.message


def test_oversize_bytes_are_refused_before_decoding(tone, tmp_path: Path):
    data = encode(tone(440.0, 0.5), 24_000, "wav")
    with pytest.raises(VoxError) as info:
        decode(data, max_bytes=len(data) - 1, max_seconds=60.0)
    assert (info.value.code, info.value.status) == ("upload_too_large", 413)

    path = tmp_path / "big.wav"
    path.write_bytes(data)
    with pytest.raises(VoxError) as info:
        decode(path, max_bytes=len(data) - 1, max_seconds=60.0)
    assert info.value.code == "upload_too_large"
    # Exactly at the limit is fine.
    assert decode(path, max_bytes=len(data), max_seconds=60.0).duration == pytest.approx(0.5)


def _two_hours_of_silent_adts() -> bytes:
    """Two hours of 8 kHz AAC made by repeating one silent ADTS frame: 0.6 MB that decodes to 7200 s."""
    stream = encode(np.zeros(8_000 * 2, np.float32), 8_000, "aac", bitrate=8_000)
    frames, i = [], 0
    while i < len(stream):
        assert stream[i] == 0xFF and stream[i + 1] & 0xF0 == 0xF0
        length = ((stream[i + 3] & 0x03) << 11) | (stream[i + 4] << 3) | (stream[i + 5] >> 5)
        frames.append(stream[i : i + length])
        i += length
    silent = frames[len(frames) // 2]
    return silent * (2 * 3600 * 8_000 // 1024 + 1)


def test_over_long_audio_is_refused_while_decoding():
    data = _two_hours_of_silent_adts()
    assert len(data) < 1_000_000

    with pytest.raises(VoxError) as info:
        decode(data, max_bytes=10_000_000, max_seconds=300.0)
    assert (info.value.code, info.value.status) == ("audio_too_long", 413)
    assert info.value.details["max_seconds"] == 300.0


def test_audio_just_under_the_duration_limit_is_accepted(tone):
    data = encode(tone(440.0, 2.0), 24_000, "wav")
    assert decode(data, max_bytes=10_000_000, max_seconds=2.0).duration == pytest.approx(2.0)
    with pytest.raises(VoxError) as info:
        decode(data, max_bytes=10_000_000, max_seconds=1.99)
    assert info.value.code == "audio_too_long"


def test_decode_gives_up_after_its_time_budget(tone):
    data = encode(tone(440.0, 1.0), 24_000, "flac")
    with pytest.raises(VoxError) as info:
        decode(data, timeout_s=0.0, **LIMITS)
    assert (info.value.code, info.value.status) == ("decode_timeout", 422)


def test_streamed_wav_with_unknown_length_header_decodes(tone):
    pcm = np.round(tone(440.0, 0.5, 16_000) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 16_000, 32_000, 2, 16)
    header = b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", 16) + fmt + b"data\xff\xff\xff\xff"
    audio = decode(header + pcm, **LIMITS)
    assert audio.duration == pytest.approx(0.5)


def test_bad_target_rate_is_refused(tone):
    with pytest.raises(VoxError) as info:
        decode(encode(tone(), 24_000, "wav"), target_sr=100, **LIMITS)
    assert info.value.code == "invalid_sample_rate"
