"""Bounded audio decoding and encoding with PyAV (FFmpeg), resampling with soxr.

Uploads are untrusted: :func:`decode` checks the byte size before FFmpeg sees anything, only lets
FFmpeg pick among a fixed list of audio demuxers (so playlists such as HLS or ``concat`` can never make
it open other files or URLs), stops as soon as the decoded duration passes the limit and gives up after
a wall-clock budget. Every refusal is a :class:`~voxvault.errors.VoxError` whose message names the
problem without FFmpeg's text (which can carry file paths).

Output formats follow OpenAI's ``response_format`` names: ``mp3``, ``opus`` (Ogg Opus, served as
``audio/ogg``: the container is Ogg, and ``audio/opus`` is not what browsers sniff for), ``aac`` (ADTS),
``flac``, ``wav`` and ``pcm`` (raw signed 16-bit little-endian mono, no header); for telephony also
``ulaw`` and ``alaw`` (raw G.711 at 8 kHz, as Twilio's media streams carry it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import soxr
from av.audio.stream import AudioStream

from voxvault.errors import VoxError

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("mp3", "opus", "aac", "flac", "wav", "pcm", "ulaw", "alaw")

CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "ulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
}

FILE_EXTENSIONS: dict[str, str] = {
    "mp3": ".mp3",
    "opus": ".opus",
    "aac": ".aac",
    "flac": ".flac",
    "wav": ".wav",
    "pcm": ".pcm",
    "ulaw": ".ulaw",
    "alaw": ".alaw",
}

# Demuxers FFmpeg may choose for an upload. Everything else (playlists, image and subtitle formats,
# raw guesses) is refused before a single packet is read.
_ALLOWED_DEMUXERS = "wav,w64,aiff,caf,au,flac,mp3,ogg,matroska,webm,mov,mp4,m4a,aac,amr,wv"
# Bound FFmpeg's format probing on hostile input; plenty for any real audio header.
_PROBE_OPTIONS = {"probesize": str(2 * 1024 * 1024), "analyzeduration": str(5_000_000)}
# A corrupt packet here and there is tolerated (FFmpeg conceals it); more than this is a broken file.
_MAX_BAD_PACKETS = 8

_MIN_RATE = 8_000
_MAX_RATE = 192_000

_RESAMPLE_QUALITY = "HQ"


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples in [-1, 1] plus what the upload was."""

    samples: np.ndarray
    sample_rate: int
    duration: float
    source_format: str
    """Container, by FFmpeg's demuxer name (``wav``, ``mp3``, ``ogg``, ``matroska`` for webm/mkv, ``mp4``
    for mp4/m4a/mov, ``aac`` for ADTS...)."""
    source_sample_rate: int
    channels: int
    codec: str = ""
    """FFmpeg decoder name, e.g. ``pcm_s16le``, ``mp3float``, ``opus``, ``aac``."""


# ---------------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------------


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample mono audio with soxr (high quality); returns float32."""
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    arr = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out or arr.size == 0:
        return arr.copy()
    return np.asarray(soxr.resample(arr, sr_in, sr_out, quality=_RESAMPLE_QUALITY), dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Convert any FFmpeg sample format to mono float32 by averaging the channels."""
    arr = frame.to_ndarray()
    channels = frame.layout.nb_channels or 1
    kind = frame.format.name.rstrip("p")
    if kind == "u8":
        data = (arr.astype(np.float32) - 128.0) / 128.0
    elif kind == "s16":
        data = arr.astype(np.float32) / 32768.0
    elif kind == "s32":
        data = (arr.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif kind == "s64":
        data = (arr.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    else:  # flt, dbl
        data = arr.astype(np.float32, copy=False)
    # Planar formats are (channels, n); packed ones interleave the channels in one row.
    data = data.reshape(channels, -1) if frame.format.is_planar else data.reshape(-1, channels).T
    mono = data[0] if channels == 1 else data.mean(axis=0, dtype=np.float32)
    return np.asarray(mono, dtype=np.float32)


def _open_source(data: bytes | bytearray | memoryview | str | Path, max_bytes: int) -> BinaryIO:
    """A readable file object for ``data``, refusing oversize input before anything reads it."""
    if isinstance(data, bytes | bytearray | memoryview):
        size = len(data)
        if size == 0:
            raise VoxError("invalid_audio", "The upload is empty.", status=422)
        if size > max_bytes:
            raise VoxError(
                "upload_too_large",
                f"Audio is {size} bytes; the limit is {max_bytes} bytes.",
                status=413,
                size=size,
                max_bytes=max_bytes,
            )
        return io.BytesIO(bytes(data))
    path = Path(data)
    try:
        info = path.stat()
    except OSError as exc:
        raise VoxError("invalid_audio", "The audio file could not be read.", status=422) from exc
    if not stat.S_ISREG(info.st_mode):
        raise VoxError("invalid_audio", "The audio source is not a regular file.", status=422)
    if info.st_size == 0:
        raise VoxError("invalid_audio", "The audio file is empty.", status=422)
    if info.st_size > max_bytes:
        raise VoxError(
            "upload_too_large",
            f"Audio is {info.st_size} bytes; the limit is {max_bytes} bytes.",
            status=413,
            size=info.st_size,
            max_bytes=max_bytes,
        )
    try:
        # A Python file object, never a path string: FFmpeg must not interpret protocols in the name.
        return open(path, "rb")  # noqa: SIM115 - closed by decode()
    except OSError as exc:
        raise VoxError("invalid_audio", "The audio file could not be read.", status=422) from exc


def _check_rate(rate: int, what: str) -> int:
    if not isinstance(rate, int | np.integer) or not _MIN_RATE <= int(rate) <= _MAX_RATE:
        raise VoxError(
            "invalid_sample_rate",
            f"{what} must be an integer between {_MIN_RATE} and {_MAX_RATE} Hz, got {rate!r}.",
            status=400,
        )
    return int(rate)


def decode(
    data: bytes | str | Path,
    *,
    max_bytes: int,
    max_seconds: float,
    target_sr: int | None = None,
    timeout_s: float = 30.0,
) -> DecodedAudio:
    """Decode an untrusted upload (any common audio container) to mono float32.

    Refuses with ``upload_too_large`` (413) before decoding when the input is over ``max_bytes``,
    ``audio_too_long`` (413) as soon as the decoded audio passes ``max_seconds`` (the rest is never
    decoded), ``decode_timeout`` (422) past ``timeout_s`` of wall-clock time, and ``invalid_audio``
    (415 when the bytes are not a known audio container, 422 when it is broken, silent-empty or has no
    audio stream). ``str`` and ``Path`` are local file paths.
    """
    if target_sr is not None:
        target_sr = _check_rate(target_sr, "target_sr")
    started = time.monotonic()
    info = _SourceInfo()
    source = _open_source(data, max_bytes)
    try:
        chunks = list(
            _iter_samples(
                source, max_seconds=max_seconds, target_sr=target_sr, budget=_Budget(timeout_s), info=info
            )
        )
    finally:
        source.close()
        log.debug("decode took %.3f s", time.monotonic() - started)
    samples = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    rate = target_sr or info.source_sample_rate
    return DecodedAudio(
        samples=samples,
        sample_rate=rate,
        duration=samples.size / rate,
        source_format=info.source_format,
        source_sample_rate=info.source_sample_rate,
        channels=info.channels,
        codec=info.codec,
    )


def iter_decode(
    data: bytes | str | Path,
    *,
    max_bytes: int,
    max_seconds: float,
    target_sr: int,
    block_seconds: float = 30.0,
    timeout_s: float = 30.0,
    max_channels: int | None = None,
) -> Iterator[np.ndarray]:
    """Decode an untrusted upload in blocks of about ``block_seconds`` of mono float32 at ``target_sr``.

    For long inputs (transcription of an hour): only one block is ever held as float32, never the whole
    file. The same refusals as :func:`decode`, raised when the consumer reaches them (non-audio input on
    the first block); ``timeout_s`` bounds the time spent decoding, not the consumer's time between
    blocks. ``max_channels`` refuses files with more channels (``too_many_channels``, 422).
    """
    rate = _check_rate(target_sr, "target_sr")
    if block_seconds <= 0:
        raise ValueError("block_seconds must be positive")
    budget = _Budget(timeout_s)
    source = _open_source(data, max_bytes)
    try:
        pending: list[np.ndarray] = []
        held = 0
        block = max(1, int(block_seconds * rate))
        for chunk in _iter_samples(
            source,
            max_seconds=max_seconds,
            target_sr=rate,
            budget=budget,
            info=_SourceInfo(),
            max_channels=max_channels,
        ):
            pending.append(chunk)
            held += chunk.size
            while held >= block:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                out, rest = joined[:block], joined[block:]
                pending, held = ([rest] if rest.size else []), rest.size
                budget.pause()
                yield out
                budget.resume()
        if held:
            yield np.concatenate(pending) if len(pending) > 1 else pending[0]
    finally:
        source.close()


def _timeout_error() -> VoxError:
    return VoxError("decode_timeout", "Decoding the audio took too long.", status=422)


class _Budget:
    """Wall-clock seconds spent decoding; paused while the consumer of :func:`iter_decode` works."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = max(0.0, limit_s)
        self.spent = 0.0
        self._since = time.monotonic()

    def check(self) -> None:
        if self.spent + (time.monotonic() - self._since) > self.limit_s:
            raise _timeout_error()

    def pause(self) -> None:
        self.spent += time.monotonic() - self._since

    def resume(self) -> None:
        self._since = time.monotonic()


@dataclass
class _SourceInfo:
    """What the upload was, filled in while it decodes."""

    source_format: str = ""
    codec: str = ""
    channels: int = 0
    source_sample_rate: int = 0


def _iter_samples(
    source: BinaryIO,
    *,
    max_seconds: float,
    target_sr: int | None,
    budget: _Budget,
    info: _SourceInfo,
    max_channels: int | None = None,
) -> Iterator[np.ndarray]:
    """Mono float32 chunks (clipped, finite) as FFmpeg decodes them; refuses what :func:`decode` refuses."""
    # FFmpeg's own timeouts only cover network protocols, not Python file objects: the budget is
    # enforced between packets in _iter_container, and probing is bounded by _PROBE_OPTIONS.
    try:
        container = av.open(
            source,
            mode="r",
            container_options={"format_whitelist": _ALLOWED_DEMUXERS, **_PROBE_OPTIONS},
            metadata_errors="replace",
        )
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise VoxError(
            "invalid_audio",
            "The upload is not a supported audio file (expected wav, flac, mp3, ogg/opus, webm, m4a/aac).",
            status=415,
        ) from exc
    try:
        with container:
            yield from _iter_container(
                container,
                max_seconds=max_seconds,
                target_sr=target_sr,
                budget=budget,
                info=info,
                max_channels=max_channels,
            )
    except VoxError:
        raise
    except Exception as exc:  # FFmpeg can fail in many ways on hostile input; none may escape as a 500.
        log.info("audio decode failed: %s", type(exc).__name__)
        raise VoxError(
            "invalid_audio", "The audio file is corrupt or cannot be decoded.", status=422
        ) from exc


def _too_many_channels(channels: int, max_channels: int) -> VoxError:
    return VoxError(
        "too_many_channels",
        f"The audio has {channels} channels; at most {max_channels} are accepted.",
        status=422,
        channels=channels,
        max_channels=max_channels,
    )


def _iter_container(
    container: Any,
    *,
    max_seconds: float,
    target_sr: int | None,
    budget: _Budget,
    info: _SourceInfo,
    max_channels: int | None,
) -> Iterator[np.ndarray]:
    if not container.streams.audio:
        raise VoxError("invalid_audio", "The file contains no audio stream.", status=422)
    stream = container.streams.audio[0]
    demuxer = container.format.name.split(",")[0]
    info.source_format = "mp4" if demuxer == "mov" else demuxer
    info.codec = stream.codec_context.name
    declared = int(getattr(stream.codec_context, "channels", 0) or 0)
    if max_channels is not None and declared > max_channels:
        raise _too_many_channels(declared, max_channels)

    resampler: soxr.ResampleStream | None = None
    decoded_seconds = 0.0
    bad_packets = 0
    produced = 0

    def finish(x: np.ndarray) -> np.ndarray:
        out = np.asarray(x, dtype=np.float32)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        np.clip(out, -1.0, 1.0, out=out)
        return out

    def add(mono: np.ndarray, rate: int) -> np.ndarray | None:
        nonlocal resampler
        if not info.source_sample_rate:
            info.source_sample_rate = rate
            if target_sr is not None and target_sr != rate:
                resampler = soxr.ResampleStream(
                    rate, target_sr, 1, dtype="float32", quality=_RESAMPLE_QUALITY
                )
        if rate != info.source_sample_rate:  # chained streams may switch rate mid-file: keep one timeline
            mono = resample(mono, rate, info.source_sample_rate)
        out = resampler.resample_chunk(mono, last=False) if resampler is not None else mono
        return finish(out) if out.size else None

    def take(frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
        nonlocal decoded_seconds
        for frame in frames:
            if frame.samples == 0 or not frame.sample_rate:
                continue
            decoded_seconds += frame.samples / frame.sample_rate
            if decoded_seconds > max_seconds + 1e-6:
                raise VoxError(
                    "audio_too_long",
                    f"Audio is longer than the {max_seconds:g} s limit.",
                    status=413,
                    max_seconds=max_seconds,
                )
            channels = frame.layout.nb_channels or 1
            if max_channels is not None and channels > max_channels:
                raise _too_many_channels(channels, max_channels)
            info.channels = info.channels or channels
            out = add(_frame_to_mono(frame), int(frame.sample_rate))
            if out is not None:
                yield out

    for packet in container.demux(stream):
        budget.check()
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            bad_packets += 1
            if bad_packets > _MAX_BAD_PACKETS:
                raise VoxError("invalid_audio", "The audio file is corrupt.", status=422) from exc
            continue
        for out in take(frames):
            produced += out.size
            yield out
    drained: list[np.ndarray] = []
    with contextlib.suppress(av.FFmpegError):  # a broken last frame: keep what decoded
        drained.extend(take(stream.decode(None)))  # drain the decoder
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if tail.size:
            drained.append(finish(tail))
    for out in drained:
        produced += out.size
        yield out
    if produced == 0:
        raise VoxError("invalid_audio", "The file contains no decodable audio.", status=422)


# ---------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CodecSpec:
    container: str
    codec: str
    legal_rates: tuple[int, ...] | None = None  # None: any rate
    default_bitrate: int | None = None
    container_options: dict[str, str] = field(default_factory=dict)
    streaming_options: dict[str, str] = field(default_factory=dict)  # extra muxer options for streams


_SPECS: dict[str, _CodecSpec] = {
    # Streams get no Xing/LAME header (writing it needs a seek back); whole files get an exact one.
    "mp3": _CodecSpec(
        "mp3", "libmp3lame", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), 96_000
    ),
    # Whole files use FFmpeg's 1 s Ogg pages; streams close a page every 60 ms (3 Opus packets, about
    # 4 kbit/s of page overhead) so audio leaves the muxer promptly.
    "opus": _CodecSpec(
        "ogg", "libopus", (8000, 12000, 16000, 24000, 48000), 32_000, {}, {"page_duration": "60000"}
    ),
    "aac": _CodecSpec(
        "adts",
        "aac",
        (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000),
        64_000,
    ),
    # No 8 KiB padding block: nobody edits these tags in place.
    "flac": _CodecSpec("flac", "flac", container_options={"write_padding": "0"}),
    # Telephony (Twilio, SIP): raw G.711 bytes, no header, 8 kHz.
    "ulaw": _CodecSpec("mulaw", "pcm_mulaw", (8000,)),
    "alaw": _CodecSpec("alaw", "pcm_alaw", (8000,)),
}


def _nearest_rate(rate: int, legal: tuple[int, ...] | None) -> int:
    if legal is None or rate in legal:
        return rate
    return min(legal, key=lambda r: (abs(r - rate), -r))


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise VoxError(
            "unsupported_format",
            f"Unsupported audio format {fmt!r}; choose one of {', '.join(FORMATS)}.",
            status=400,
            supported=list(FORMATS),
        )
    return fmt


def _check_bitrate(bitrate: int | None) -> int | None:
    if bitrate is None:
        return None
    if not isinstance(bitrate, int | np.integer) or not 6_000 <= int(bitrate) <= 512_000:
        raise VoxError(
            "invalid_bitrate", "bitrate must be an integer between 6000 and 512000 bit/s.", status=400
        )
    return int(bitrate)


def _prepare_samples(samples: np.ndarray) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {arr.shape}")
    arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(arr, -1.0, 1.0)


def _to_s16le(x: np.ndarray) -> bytes:
    return np.round(x * 32767.0).astype("<i2").tobytes()


def _wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """44-byte PCM WAV header; ``data_bytes=None`` writes 0xFFFFFFFF sizes ("until end of stream")."""
    if data_bytes is None:
        riff_size = data_size = 0xFFFFFFFF
    else:
        riff_size, data_size = 36 + data_bytes, data_bytes
    fmt_chunk = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt_chunk))
        + fmt_chunk
        + b"data"
        + struct.pack("<I", data_size)
    )


class _DrainSink:
    """Write-only, non-seekable sink: FFmpeg writes, we hand the bytes out after every push."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class _AVWriter:
    """One PyAV output container fed mono float32 frames at the codec's rate."""

    def __init__(self, fmt: str, rate: int, bitrate: int | None, sink: Any, streaming: bool) -> None:
        spec = _SPECS[fmt]
        options = {**spec.container_options, **(spec.streaming_options if streaming else {})}
        if streaming:
            options["flush_packets"] = "1"
        self._container = av.open(sink, mode="w", format=spec.container, container_options=options)
        try:
            stream = self._container.add_stream(spec.codec, rate=rate)
            if not isinstance(stream, AudioStream):
                raise RuntimeError(f"{spec.codec} is not an audio encoder")
            self._stream = stream
            self._stream.layout = "mono"
            chosen = bitrate or spec.default_bitrate
            if chosen:
                self._stream.bit_rate = chosen
            self._container.start_encoding()
        except BaseException:
            self._container.close()
            raise
        self._rate = rate
        self._pts = 0

    def write(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x, dtype=np.float32)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._pts
        self._pts += x.size
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()


class StreamEncoder:
    """Incremental encoder for streamed responses: concatenating every returned chunk is a valid file.

    ``push`` returns whatever encoded bytes are ready (the first call also carries the container header);
    ``close`` flushes the encoder. How far the audio that has come out lags what was pushed (measured
    with 24 kHz input, 0.1-0.7 s chunks): pcm and wav 0; flac 0-95 ms (one block); opus 65-115 ms (the
    open 60 ms Ogg page, the closed page the muxer keeps until the next one, one 20 ms Opus frame); mp3
    95-115 ms and aac 85-130 ms, of which 46 ms (mp3) and 43 ms (aac) is encoder priming: silence at the
    very start of the stream (a streamed mp3 has no LAME header to tell decoders to skip it). A ``wav``
    stream carries a header with 0xFFFFFFFF sizes ("until the end"), as OpenAI's does.
    """

    def __init__(
        self, fmt: str, sample_rate: int, out_sample_rate: int | None = None, *, bitrate: int | None = None
    ) -> None:
        self.format = _check_format(fmt)
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        requested = _check_rate(out_sample_rate, "out_sample_rate") if out_sample_rate else sample_rate
        spec = _SPECS.get(fmt)
        self.out_sample_rate = _nearest_rate(requested, spec.legal_rates if spec else None)
        self.sample_rate = sample_rate
        bitrate = _check_bitrate(bitrate)
        self._resampler = (
            soxr.ResampleStream(
                sample_rate, self.out_sample_rate, 1, dtype="float32", quality=_RESAMPLE_QUALITY
            )
            if self.out_sample_rate != sample_rate
            else None
        )
        self._pending_header = _wav_header(self.out_sample_rate, None) if fmt == "wav" else b""
        self._sink = _DrainSink()
        self._writer = _AVWriter(fmt, self.out_sample_rate, bitrate, self._sink, True) if spec else None
        self._closed = False

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def _emit(self, x: np.ndarray) -> bytes:
        if self._writer is None:
            return _to_s16le(x)
        self._writer.write(x)
        return self._sink.drain()

    def _take_header(self) -> bytes:
        head, self._pending_header = self._pending_header, b""
        return head

    def push(self, samples: np.ndarray) -> bytes:
        """Encode a chunk of mono float32 samples at ``sample_rate``; returns the bytes ready so far."""
        if self._closed:
            raise RuntimeError("StreamEncoder is closed")
        x = _prepare_samples(samples)
        if self._resampler is not None:
            x = np.asarray(self._resampler.resample_chunk(x, last=False), dtype=np.float32)
        return self._take_header() + self._emit(x)

    def close(self) -> bytes:
        """Flush everything still buffered; safe to call twice (the second call returns b"")."""
        if self._closed:
            return b""
        self._closed = True
        out = self._take_header()
        if self._resampler is not None:
            tail = np.asarray(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True), np.float32)
            out += self._emit(np.clip(tail, -1.0, 1.0))
        if self._writer is not None:
            self._writer.close()
            out += self._sink.drain()
        return out

    def __enter__(self) -> StreamEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode(
    samples: np.ndarray,
    sample_rate: int,
    fmt: str,
    *,
    out_sample_rate: int | None = None,
    bitrate: int | None = None,
) -> bytes:
    """Encode mono float32 audio to a complete file in ``fmt`` (see :data:`FORMATS`).

    Rates a codec cannot carry go to the nearest legal one (Opus: 8/12/16/24/48 kHz; MP3: MPEG
    rates up to 48 kHz; AAC: the ADTS table). ``bitrate`` (bit/s) applies to mp3, opus and aac.
    """
    _check_format(fmt)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    requested = _check_rate(out_sample_rate, "out_sample_rate") if out_sample_rate else sample_rate
    spec = _SPECS.get(fmt)
    rate = _nearest_rate(requested, spec.legal_rates if spec else None)
    bitrate = _check_bitrate(bitrate)
    x = _prepare_samples(samples)
    if rate != sample_rate:
        x = np.clip(resample(x, sample_rate, rate), -1.0, 1.0)
    if fmt == "pcm":
        return _to_s16le(x)
    if fmt == "wav":
        pcm = _to_s16le(x)
        return _wav_header(rate, len(pcm)) + pcm
    assert spec is not None
    buffer = io.BytesIO()  # seekable: FFmpeg writes exact lengths (Xing header, FLAC STREAMINFO)
    writer = _AVWriter(fmt, rate, bitrate, buffer, False)
    writer.write(x)
    writer.close()
    return buffer.getvalue()


__all__ = [
    "CONTENT_TYPES",
    "FILE_EXTENSIONS",
    "FORMATS",
    "DecodedAudio",
    "StreamEncoder",
    "decode",
    "encode",
    "iter_decode",
    "resample",
]
