"""Audio that arrives in pieces (the speech-to-text WebSocket): 16-bit PCM, raw Opus packets, Ogg/Opus,
WebM/Opus.

Each decoder takes the bytes of one message and returns mono float32 at its ``rate`` (nothing is held
back but an unfinished Ogg page or packet, bounded below). Opus is decoded by FFmpeg's decoder through
PyAV, already the project's decoder for uploads:

``pcm_s16le``
    mono little-endian 16-bit samples at the client's ``sample_rate``; a message must hold whole samples.
``opus``
    one raw Opus packet per message (RFC 6716: what WebCodecs' ``AudioEncoder`` or an RTP payload
    carries), mono or stereo, decoded at 48 kHz. Stereo is mixed down.
``ogg_opus``
    an Ogg/Opus byte stream (RFC 7845: what ``ffmpeg -c:a libopus -f ogg -`` or a ``.opus`` file holds),
    cut anywhere: Ogg pages (RFC 3533) are split into packets here, the ``OpusHead`` header gives the
    channel count and the encoder delay (pre-skip, dropped), ``OpusTags`` is skipped. One logical stream:
    pages of any other are ignored.
``webm_opus``
    a WebM (Matroska) byte stream with an Opus track, cut anywhere: what Chromium's and Firefox's
    ``MediaRecorder`` hand out (``audio/webm;codecs=opus``; clusters and the segment of unknown size).
    EBML elements are read here: the first Opus track of ``Tracks`` (its ``OpusHead`` gives the channels
    and the pre-skip, dropped), its ``SimpleBlock``/``Block`` frames (unlaced, as browsers write them)
    go to the Opus decoder; other elements are skipped as they stream past.

Anything that does not decode is refused with ``invalid_audio`` naming what was wrong.
"""

from __future__ import annotations

import struct
from typing import Protocol

import numpy as np

from voxvault.errors import VoxError

ENCODINGS = ("pcm_s16le", "opus", "ogg_opus", "webm_opus")
OPUS_RATE = 48_000
#: An Ogg page is at most 27 + 255 + 255 * 255 bytes; a packet may span pages, but not past this.
MAX_OGG_PACKET = 1 << 20
_OGG_HEADER = struct.Struct("<4sBBqIIIB")


class StreamDecoder(Protocol):
    rate: int

    def decode(self, data: bytes) -> np.ndarray: ...


class PcmDecoder:
    def __init__(self, rate: int) -> None:
        self.rate = rate

    def decode(self, data: bytes) -> np.ndarray:
        if len(data) % 2:
            raise VoxError("invalid_audio", "PCM frames must hold whole 16-bit samples")
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class OpusDecoder:
    """Raw Opus packets, one per call, to mono float32 at 48 kHz."""

    rate = OPUS_RATE

    def __init__(self, channels: int = 1) -> None:
        import av

        if channels not in (1, 2):
            raise VoxError("invalid_audio", f"Opus streams of {channels} channels are not supported (1 or 2)")
        self._av = av
        self._codec = av.CodecContext.create("opus", "r")
        self._codec.sample_rate = OPUS_RATE
        self._codec.layout = "mono" if channels == 1 else "stereo"

    def decode(self, data: bytes) -> np.ndarray:
        if not data:
            return np.zeros(0, np.float32)
        try:
            frames = self._codec.decode(self._av.Packet(data))
        except (self._av.error.FFmpegError, ValueError) as exc:
            raise VoxError("invalid_audio", f"a message is not an Opus packet ({exc})") from None
        parts = []
        for frame in frames:
            samples = frame.to_ndarray()
            if frame.format.name.startswith("s16"):
                samples = samples.astype(np.float32) / 32768.0
            if not frame.format.is_planar:  # interleaved: (1, n * channels)
                samples = samples.reshape(-1, len(frame.layout.channels)).T
            parts.append(np.asarray(samples, dtype=np.float32).mean(axis=0))
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class OggOpusDecoder:
    """An Ogg/Opus byte stream, in pieces of any size, to mono float32 at 48 kHz."""

    rate = OPUS_RATE

    def __init__(self) -> None:
        self._pending = b""  # bytes of an unfinished page
        self._packet = b""  # the start of a packet that continues on the next page
        self._serial: int | None = None
        self._opus: OpusDecoder | None = None
        self._tags_seen = False
        self._skip = 0  # samples of the encoder's delay still to drop

    def decode(self, data: bytes) -> np.ndarray:
        self._pending += data
        out: list[np.ndarray] = []
        while True:
            page = self._next_page()
            if page is None:
                break
            for packet in page:
                out.append(self._packet_audio(packet))
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _next_page(self) -> list[bytes] | None:
        """The packets completed by the next whole page in the buffer, or None until one is there."""
        buf = self._pending
        if len(buf) < _OGG_HEADER.size:
            return None
        magic, version, flags, _granule, serial, _seq, _crc, n_segments = _OGG_HEADER.unpack_from(buf)
        if magic != b"OggS" or version != 0:
            raise VoxError("invalid_audio", "the stream is not Ogg (expected an 'OggS' page)")
        header = _OGG_HEADER.size + n_segments
        if len(buf) < header:
            return None
        lacing = buf[_OGG_HEADER.size : header]
        end = header + sum(lacing)
        if len(buf) < end:
            return None
        body, self._pending = buf[header:end], buf[end:]
        if self._serial is None:
            self._serial = serial
        if serial != self._serial:
            return []  # another logical stream (a multiplexed file): not ours
        if not flags & 0x01:
            self._packet = b""  # a fresh packet starts here (a continuation of a lost page is dropped)
        packets: list[bytes] = []
        pos = 0
        for size in lacing:
            self._packet += body[pos : pos + size]
            pos += size
            if len(self._packet) > MAX_OGG_PACKET:
                raise VoxError("invalid_audio", "an Ogg packet is larger than 1 MiB")
            if size < 255:
                packets.append(self._packet)
                self._packet = b""
        return packets

    def _packet_audio(self, packet: bytes) -> np.ndarray:
        if self._opus is None:
            if not packet.startswith(b"OpusHead") or len(packet) < 19:
                raise VoxError("invalid_audio", "the Ogg stream is not Opus (no OpusHead header)")
            channels, pre_skip = packet[9], struct.unpack_from("<H", packet, 10)[0]
            if len(packet) > 18 and packet[18] != 0:
                raise VoxError("invalid_audio", "multichannel (mapping family > 0) Opus is not supported")
            self._opus = OpusDecoder(channels)
            self._skip = pre_skip
            return np.zeros(0, np.float32)
        if not self._tags_seen:
            self._tags_seen = True
            if packet.startswith(b"OpusTags"):
                return np.zeros(0, np.float32)
        samples = self._opus.decode(packet)
        if self._skip:
            dropped = min(self._skip, samples.size)
            samples, self._skip = samples[dropped:], self._skip - dropped
        return samples


# Matroska element ids (with their length marker, as written)
_SEGMENT, _CLUSTER, _BLOCK_GROUP = 0x18538067, 0x1F43B675, 0xA0
_SIMPLE_BLOCK, _BLOCK, _TRACKS = 0xA3, 0xA1, 0x1654AE6B
_TRACK_ENTRY, _TRACK_NUMBER, _CODEC_ID, _CODEC_PRIVATE = 0xAE, 0xD7, 0x86, 0x63A2
#: Elements entered rather than read whole (their size may be unknown while a recorder is still writing).
_CONTAINERS = (_SEGMENT, _CLUSTER, _BLOCK_GROUP)


def _vint(buf: bytes | bytearray, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    """An EBML variable-length integer at ``pos``: (value, its length); None when not all there yet.
    A size of all ones (unknown) comes back as -1."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first == 0:
        raise VoxError("invalid_audio", "the WebM stream has a malformed element header")
    length = 9 - first.bit_length()
    if pos + length > len(buf):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for b in buf[pos + 1 : pos + length]:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return -1, length
    return value, length


def _elements(body: bytes) -> list[tuple[int, bytes]]:
    """The (id, payload) children of a whole master element."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(body):
        head = _vint(body, pos, True)
        size = _vint(body, pos + head[1], False) if head else None
        if head is None or size is None or size[0] < 0:
            raise VoxError("invalid_audio", "the WebM track list is malformed")
        start = pos + head[1] + size[1]
        out.append((head[0], body[start : start + size[0]]))
        pos = start + size[0]
    return out


class WebmOpusDecoder:
    """A WebM/Opus byte stream, in pieces of any size, to mono float32 at 48 kHz."""

    rate = OPUS_RATE

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # bytes of an element being skipped still to come
        self._track: int | None = None
        self._opus: OpusDecoder | None = None
        self._pre_skip = 0

    def decode(self, data: bytes) -> np.ndarray:
        out: list[np.ndarray] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            data, self._skip = data[dropped:], self._skip - dropped
        self._buf += data
        pos = 0
        while True:
            head = _vint(self._buf, pos, True)
            size = _vint(self._buf, pos + head[1], False) if head else None
            if head is None or size is None:
                break
            element, length = head[0], size[0]
            body = pos + head[1] + size[1]
            if element in _CONTAINERS:
                pos = body  # entered: its children follow
                continue
            if length < 0:
                raise VoxError("invalid_audio", f"WebM element {element:#x} has an unknown size")
            if element in (_SIMPLE_BLOCK, _BLOCK, _TRACKS):
                if length > MAX_OGG_PACKET:
                    raise VoxError("invalid_audio", "a WebM block is larger than 1 MiB")
                if len(self._buf) < body + length:
                    break  # wait for the rest of it
                payload = bytes(self._buf[body : body + length])
                if element == _TRACKS:
                    self._tracks(payload)
                else:
                    out.append(self._block(payload))
                pos = body + length
                continue
            # anything else (EBML header, Info, Cues, Tags, timecodes...): skipped, even before it is all here
            if len(self._buf) >= body + length:
                pos = body + length
            else:
                self._skip = body + length - len(self._buf)
                pos = len(self._buf)
                break
        del self._buf[:pos]
        if len(self._buf) > MAX_OGG_PACKET + 64:
            raise VoxError("invalid_audio", "the WebM stream holds an element larger than 1 MiB")
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def _tracks(self, payload: bytes) -> None:
        for element, entry in _elements(payload):
            if element != _TRACK_ENTRY or self._opus is not None:
                continue
            fields = dict(_elements(entry))
            if fields.get(_CODEC_ID, b"").rstrip(b"\0") != b"A_OPUS":
                continue
            head = fields.get(_CODEC_PRIVATE, b"")
            if not head.startswith(b"OpusHead") or len(head) < 19:
                raise VoxError("invalid_audio", "the WebM Opus track has no OpusHead")
            if head[18] != 0:
                raise VoxError("invalid_audio", "multichannel (mapping family > 0) Opus is not supported")
            self._track = int.from_bytes(fields.get(_TRACK_NUMBER, b"\1"), "big")
            self._opus = OpusDecoder(head[9])
            self._pre_skip = struct.unpack_from("<H", head, 10)[0]
        if self._opus is None:
            raise VoxError("invalid_audio", "the WebM stream has no Opus track (audio/webm;codecs=opus)")

    def _block(self, payload: bytes) -> np.ndarray:
        track = _vint(payload, 0, False)
        if self._opus is None:
            raise VoxError("invalid_audio", "WebM audio came before its track list")
        if track is None or track[0] != self._track or len(payload) < track[1] + 3:
            return np.zeros(0, np.float32)  # another track, or a block too short to hold audio
        if payload[track[1] + 2] & 0x06:
            raise VoxError(
                "invalid_audio", "laced WebM blocks are not supported (browsers do not write them)"
            )
        samples = self._opus.decode(payload[track[1] + 3 :])
        if self._pre_skip:
            dropped = min(self._pre_skip, samples.size)
            samples, self._pre_skip = samples[dropped:], self._pre_skip - dropped
        return samples


def stream_decoder(encoding: str, sample_rate: int) -> StreamDecoder:
    """The decoder for ``encoding`` (one of :data:`ENCODINGS`); ``sample_rate`` only applies to PCM."""
    if encoding == "pcm_s16le":
        return PcmDecoder(sample_rate)
    if encoding == "opus":
        return OpusDecoder()
    if encoding == "ogg_opus":
        return OggOpusDecoder()
    if encoding == "webm_opus":
        return WebmOpusDecoder()
    raise VoxError("unsupported_encoding", f"encoding must be one of {', '.join(ENCODINGS)}")
