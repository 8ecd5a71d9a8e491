"""ElevenLabs-compatible speech: whole file, HTTP stream, and the text-input WebSocket.

* ``POST /v1/text-to-speech/{voice_id}``: the whole file in one response.
* ``POST /v1/text-to-speech/{voice_id}/stream``: chunked audio, the first phrase while the rest renders.
* ``WS /v1/text-to-speech/{voice_id}/stream-input``: the client sends text as its language model writes
  it (``{"text": ...}``, ``"flush": true``, ``{"text": ""}`` to end); the server answers with audio
  chunks (JSON with base64 audio, or binary frames with ``binary_audio=true``), character alignment in
  ElevenLabs' shape and voxvault's word timings, then ``{"isFinal": true}`` and close code 1000.

WebSocket refusals close with a code a client can act on, after an ``{"error": {"code", "message"}}``
message: 1007 malformed message, 1009 message too big, 1008 policy (missing or invalid key, unknown
voice, text after the end, bad parameters, idle too long), 1013 busy (retry later), 1011 internal.
The message shapes are documented in docs/streaming.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from voxvault.api.deps import require
from voxvault.api.routes.speech import start_speech_stream
from voxvault.api.streaming import ClosingStreamingResponse
from voxvault.audio import StreamEncoder
from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.synthesis import PreparedSpeech
from voxvault.synthesis.pipeline import (
    FIRST_PIECE_PHONEMES,
    OUTPUT_SAMPLE_RATES,
    ChunkHook,
    SpeechPipeline,
    VoiceStyle,
)
from voxvault.synthesis.records import GenerationTicket
from voxvault.synthesis.streaming import (
    DEFAULT_CHUNK_SCHEDULE,
    CharAlignment,
    SessionChunk,
    SpeechSession,
    TextSegmenter,
    check_schedule,
    trailing_pause_s,
)
from voxvault.text.ssml import is_ssml
from voxvault.text.validity import find_invalid_text

router = APIRouter(tags=["elevenlabs"])
log = logging.getLogger(__name__)

DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
MAX_INACTIVITY_S = 180.0

# WebSocket close codes (RFC 6455 section 7.4.1).
WS_NORMAL = 1000
WS_UNSUPPORTED = 1003
WS_INVALID = 1007
WS_POLICY = 1008
WS_TOO_BIG = 1009
WS_INTERNAL = 1011
WS_TRY_LATER = 1013


# ------------------------------------------------------------------------------------------- formats
@dataclass(frozen=True)
class OutputFormat:
    format: str
    sample_rate: int | None
    bitrate: int | None


_OUTPUT_FORMAT = re.compile(r"(pcm|mp3|opus|wav|flac|aac|ulaw|alaw)(?:_(\d+))?(?:_(\d+))?")
# Most an encoder takes for one (mono) channel: libopus refuses more than 256 kbit/s, MPEG audio stops at 320.
_MAX_BITRATE = {"opus": 256_000}
_TELEPHONY = ("ulaw", "alaw")


def parse_output_format(value: str) -> OutputFormat:
    """``pcm_24000``, ``mp3_44100_128``, ``opus_48000_64``, ``wav_24000``, ``ulaw_8000`` (or just ``mp3``).

    Every combination is checked here, before a response starts: the encoder is opened and closed once,
    so nothing it would refuse can fail after the headers went out.
    """
    m = _OUTPUT_FORMAT.fullmatch(value.strip().lower())
    if m is None:
        raise VoxError(
            "unsupported_format",
            f"output_format {value[:40]!r} is not supported; use pcm_<rate>, mp3_<rate>_<kbps>, "
            "opus_48000_<kbps>, wav_<rate>, ulaw_8000 or alaw_8000",
        )
    fmt, rate_s, kbps_s = m.groups()
    rate = int(rate_s) if rate_s else None
    if fmt in _TELEPHONY and rate not in (None, 8000):
        raise VoxError("invalid_sample_rate", f"{fmt} is only available at 8000 Hz ({fmt}_8000)")
    if rate is not None and rate not in OUTPUT_SAMPLE_RATES:
        raise VoxError(
            "invalid_sample_rate",
            f"sample rate {rate} is not one of {', '.join(map(str, OUTPUT_SAMPLE_RATES))}",
        )
    bitrate = int(kbps_s) * 1000 if kbps_s else None
    if bitrate is not None and fmt not in ("mp3", "opus", "aac"):
        raise VoxError("invalid_bitrate", f"{fmt} has no bitrate; use {fmt}_<rate>")
    if bitrate is not None and not 8_000 <= bitrate <= _MAX_BITRATE.get(fmt, 320_000):
        limit = _MAX_BITRATE.get(fmt, 320_000) // 1000
        raise VoxError("invalid_bitrate", f"{fmt} bitrate must be between 8 and {limit} kbit/s")
    out = OutputFormat(fmt, 8000 if fmt in _TELEPHONY else rate, bitrate)
    _check_encoder(out)
    return out


def _check_encoder(out: OutputFormat) -> None:
    """Open and close the encoder once (a few ms): what FFmpeg refuses is a 400 now, not a broken stream."""
    try:
        StreamEncoder(out.format, 24_000, out.sample_rate, bitrate=out.bitrate).close()
    except VoxError:
        raise
    except Exception:  # noqa: BLE001 - FFmpeg's refusal, whatever its type
        raise VoxError(
            "unsupported_format", "this output_format's codec refuses that sample rate and bitrate"
        ) from None


# ------------------------------------------------------------------------------------------- HTTP
class VoiceSettings(BaseModel):
    """ElevenLabs' voice settings; only ``speed`` changes how voxvault speaks."""

    model_config = ConfigDict(extra="ignore")

    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    stability: float | None = None
    similarity_boost: float | None = None
    style: float | None = None
    use_speaker_boost: bool | None = None


class TextToSpeechRequest(BaseModel):
    """ElevenLabs' text-to-speech body. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(description="Text (or SSML starting with <speak>) to speak.")
    model_id: str | None = Field(default=None, description="Accepted for compatibility; ignored.")
    voice_settings: VoiceSettings | None = None


def _prepare(
    request: Request,
    principal: Principal,
    voice_id: str,
    body: TextToSpeechRequest,
    output_format: str,
    *,
    short_start: bool,
) -> tuple[PreparedSpeech, _SessionAudio]:
    """Everything a request can get wrong is checked here, before a response starts."""
    vv = request.app.state.vv
    out = parse_output_format(output_format)
    style = vv.voice_for(principal, voice_id)
    speed = body.voice_settings.speed if body.voice_settings is not None else 1.0
    prepared = vv.pipeline.prepare(
        body.text,
        style,
        fmt=out.format,
        speed=speed,
        sample_rate=out.sample_rate,
        lexicon=vv.lexicon_for(principal),
        first_piece_phonemes=FIRST_PIECE_PHONEMES if short_start else None,
    )
    original = None if is_ssml(body.text) else body.text
    return prepared, _SessionAudio(vv.pipeline, prepared, out, original)


class _SessionAudio:
    """Renders a prepared request through a ``SpeechSession`` (the stream-input renderer): encoded audio
    at the output format's own bitrate for ``start_speech_stream``, and each chunk with its timings kept
    in ``timed``, in order, for the routes that send them."""

    def __init__(
        self, pipeline: SpeechPipeline, prepared: PreparedSpeech, out: OutputFormat, original: str | None
    ) -> None:
        self.pipeline = pipeline
        self.prepared = prepared
        self.out = out
        self.original = original
        self.timed: deque[SessionChunk] = deque()

    def __call__(self, hook: ChunkHook, cancel: threading.Event, stats: dict[str, float]) -> Iterator[bytes]:
        session = SpeechSession(
            self.pipeline,
            self.prepared.voice,
            fmt=self.out.format,
            sample_rate=self.out.sample_rate,
            speed=self.prepared.speed,
            bitrate=self.out.bitrate,
            hook=hook,
            cancel=cancel,
        )
        return self._audio(session, cancel, stats)

    def _audio(
        self, session: SpeechSession, cancel: threading.Event, stats: dict[str, float]
    ) -> Iterator[bytes]:
        t0 = time.perf_counter()
        for chunk in session.speak(self.prepared, original=self.original):
            if chunk.audio:
                stats.setdefault("first_audio_s", time.perf_counter() - t0)
                self.timed.append(chunk)
                yield chunk.audio
        if cancel.is_set():
            return
        last = session.finish()
        if last.audio:
            self.timed.append(last)
            yield last.audio
        stats["audio_s"] = session.audio_s
        stats["total_s"] = time.perf_counter() - t0


def seconds_alignment(al: CharAlignment | None, start_s: float, *, lead_space: bool) -> dict[str, Any] | None:
    """ElevenLabs' HTTP alignment: characters with start and end times in seconds from the audio's start.

    ``lead_space``: a chunk after the first starts with a space, so a client that joins characters into
    words across chunks (Pipecat does) never glues the last word of one chunk to the first of the next.
    """
    if al is None or not al.chars:
        return None
    chars, starts, durations = list(al.chars), list(al.starts_ms), list(al.durations_ms)
    if lead_space and chars[0] != " ":
        chars, starts, durations = [" ", *chars], [starts[0], *starts], [0, *durations]
    return {
        "characters": chars,
        "character_start_times_seconds": [round(start_s + ms / 1000, 3) for ms in starts],
        "character_end_times_seconds": [
            round(start_s + (ms + d) / 1000, 3) for ms, d in zip(starts, durations, strict=True)
        ],
    }


def _timed_json(chunk: SessionChunk, audio: bytes, first: bool) -> dict[str, Any]:
    return {
        "audio_base64": base64.b64encode(audio).decode("ascii"),
        "alignment": seconds_alignment(chunk.alignment, chunk.start_s, lead_space=not first),
        "normalized_alignment": seconds_alignment(
            chunk.normalized_alignment, chunk.start_s, lead_space=not first
        ),
    }


def _ndjson(chunks: Iterator[bytes], timed: deque[SessionChunk]) -> Iterator[bytes]:
    """One JSON object per line and audio chunk (closing this closes the metered stream under it)."""
    try:
        first = True
        for data in chunks:
            chunk = timed.popleft()
            yield (json.dumps(_timed_json(chunk, data, first)) + "\n").encode()
            first = False
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


OutputFormatQuery = Annotated[
    str,
    Query(
        description="pcm_<rate>, mp3_<rate>_<kbps>, opus_48000_<kbps>, wav_<rate>, ulaw_8000 or alaw_8000.",
        max_length=40,
    ),
]
SpeechPrincipal = Annotated[Principal, Depends(require("speech:create"))]


@router.post(
    "/v1/text-to-speech/{voice_id}",
    response_class=Response,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "The whole audio file."}},
)
def text_to_speech(
    voice_id: str,
    body: TextToSpeechRequest,
    request: Request,
    principal: SpeechPrincipal,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> Response:
    """The whole file, sent when all of it is rendered (the streaming benchmark's baseline)."""
    t_start = time.perf_counter()
    prepared, render = _prepare(request, principal, voice_id, body, output_format, short_start=False)
    chunks, ticket = start_speech_stream(request, principal, prepared, t_start, render)
    audio = b"".join(chunks)  # a sync route runs in the threadpool
    return Response(audio, media_type=prepared.content_type, headers={"x-generation-id": ticket.id})


@router.post(
    "/v1/text-to-speech/{voice_id}/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "Audio bytes, streamed (chunked)."}},
)
def text_to_speech_stream(
    voice_id: str,
    body: TextToSpeechRequest,
    request: Request,
    principal: SpeechPrincipal,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> StreamingResponse:
    """Chunked audio: a short first piece leaves as soon as it is rendered, the rest follows."""
    t_start = time.perf_counter()
    prepared, render = _prepare(request, principal, voice_id, body, output_format, short_start=True)
    chunks, ticket = start_speech_stream(request, principal, prepared, t_start, render)
    return ClosingStreamingResponse(
        chunks, media_type=prepared.content_type, headers={"x-generation-id": ticket.id}
    )


@router.post("/v1/text-to-speech/{voice_id}/with-timestamps", response_class=JSONResponse)
def text_to_speech_with_timestamps(
    voice_id: str,
    body: TextToSpeechRequest,
    request: Request,
    principal: SpeechPrincipal,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> JSONResponse:
    """The whole file as ``audio_base64`` with per-character ``alignment`` (the text as sent) and
    ``normalized_alignment`` (as spoken: numbers as words), in seconds; times come from the model's
    own durations (docs/streaming.md)."""
    t_start = time.perf_counter()
    prepared, render = _prepare(request, principal, voice_id, body, output_format, short_start=False)
    chunks, ticket = start_speech_stream(request, principal, prepared, t_start, render)
    parts = [_timed_json(render.timed.popleft(), data, i == 0) for i, data in enumerate(chunks)]
    merged: dict[str, Any] = {"audio_base64": "", "alignment": None, "normalized_alignment": None}
    audio = b"".join(base64.b64decode(p["audio_base64"]) for p in parts)
    merged["audio_base64"] = base64.b64encode(audio).decode("ascii")
    for key in ("alignment", "normalized_alignment"):
        found = [p[key] for p in parts if p[key]]
        if found:
            merged[key] = {
                name: [x for f in found for x in f[name]]
                for name in ("characters", "character_start_times_seconds", "character_end_times_seconds")
            }
            if merged[key]["characters"][0] == " ":  # the first chunk with text may not be the first chunk
                merged[key] = {name: values[1:] for name, values in merged[key].items()}
    return JSONResponse(merged, headers={"x-generation-id": ticket.id})


@router.post(
    "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One JSON object per line."}},
)
def text_to_speech_stream_with_timestamps(
    voice_id: str,
    body: TextToSpeechRequest,
    request: Request,
    principal: SpeechPrincipal,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> StreamingResponse:
    """Newline-delimited JSON, one line per audio chunk: ``audio_base64``, ``alignment`` and
    ``normalized_alignment`` with times in seconds from the start of the whole audio (as ElevenLabs')."""
    t_start = time.perf_counter()
    prepared, render = _prepare(request, principal, voice_id, body, output_format, short_start=True)
    chunks, ticket = start_speech_stream(request, principal, prepared, t_start, render)
    return ClosingStreamingResponse(
        _ndjson(chunks, render.timed),
        media_type="application/x-ndjson",
        headers={"x-generation-id": ticket.id},
    )


# ------------------------------------------------------------------------------------------- WebSocket
class WsClose(Exception):
    """End the WebSocket with ``code``; ``reason`` is a stable error code, ``message`` says more."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


class ClientGone(Exception):
    """The client closed the connection or it broke."""


def _close_for(exc: VoxError) -> WsClose:
    code = WS_TRY_LATER if exc.status == 429 else WS_INTERNAL if exc.status >= 500 else WS_POLICY
    return WsClose(code, exc.code, exc.message)


def _query_bool(value: str | None, name: str) -> bool:
    if value is None or value.lower() in {"false", "0", "no", ""}:
        return False
    if value.lower() in {"true", "1", "yes"}:
        return True
    raise VoxError("invalid_parameter", f"{name} must be true or false")


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    return (value[7:].strip() if value[:7].lower() == "bearer " else value) or None


def _ws_secret(ws: WebSocket) -> str | None:
    """The key from headers (server clients) or the query string (browsers cannot set WS headers)."""
    q = ws.query_params
    return (
        _bearer(ws.headers.get("authorization"))
        or _bearer(ws.headers.get("xi-api-key"))
        or _bearer(q.get("xi_api_key"))
        or _bearer(q.get("authorization"))
    )


def _authenticate(ws: WebSocket, secret: str | None) -> Principal:
    vv = ws.app.state.vv
    if not secret:
        raise VoxError(
            "missing_api_key",
            "send an API key: xi-api-key header, ?xi_api_key= or xi_api_key in the first message",
            401,
        )
    if len(secret) > 256:
        raise VoxError("invalid_api_key", "the API key is not valid", 401)
    principal: Principal = vv.keys.authenticate(secret)
    if not principal.has("speech:create"):
        vv.audit.record(
            "access.denied",
            actor=principal.key_id,
            target="/v1/text-to-speech/{voice_id}/stream-input",
            details={"reason": "insufficient_scope", "scope": "speech:create", "method": "WEBSOCKET"},
        )
        raise VoxError("insufficient_scope", "this API key lacks the 'speech:create' scope", 403)
    return principal


@dataclass
class _Params:
    output: OutputFormat
    inactivity_s: float
    binary_audio: bool


def _ws_params(ws: WebSocket) -> _Params:
    q = ws.query_params
    output = parse_output_format(q.get("output_format") or DEFAULT_OUTPUT_FORMAT)
    default_idle = ws.app.state.vv.settings.ws_inactivity_timeout_s
    try:
        inactivity = float(q.get("inactivity_timeout") or default_idle)
    except ValueError:
        raise VoxError("invalid_parameter", "inactivity_timeout must be a number of seconds") from None
    if not 1 <= inactivity <= MAX_INACTIVITY_S:
        raise VoxError(
            "invalid_parameter", f"inactivity_timeout must be between 1 and {MAX_INACTIVITY_S:.0f} s"
        )
    return _Params(output, inactivity, _query_bool(q.get("binary_audio"), "binary_audio"))


def _parse_message(raw: Mapping[str, Any], max_bytes: int, text_required: bool = True) -> dict[str, Any]:
    """A received frame -> its JSON object; WsClose for anything malformed.

    ``text_required``: stream-input messages all carry ``text``; multi-stream-input's control messages
    (``close_context``, ``close_socket``, ``flush``) may leave it out or send null.
    """
    if raw.get("type") == "websocket.disconnect":
        raise ClientGone
    text = raw.get("text")
    if text is None:
        raise WsClose(WS_UNSUPPORTED, "binary_not_supported", "send text frames with JSON messages")
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        raise WsClose(WS_TOO_BIG, "message_too_big", f"messages are limited to {max_bytes} bytes")
    try:
        msg = json.loads(text)
    except ValueError:
        raise WsClose(WS_INVALID, "invalid_json", "the message is not valid JSON") from None
    if not isinstance(msg, dict) or not (
        isinstance(msg.get("text"), str) or (not text_required and msg.get("text") is None)
    ):
        raise WsClose(
            WS_INVALID, "invalid_message", 'each message must be a JSON object with a string "text"'
        )
    for flag in ("flush", "try_trigger_generation", "close_context", "close_socket"):
        if flag in msg and not isinstance(msg[flag], bool | None):
            raise WsClose(WS_INVALID, "invalid_message", f'"{flag}" must be true or false')
    problem = find_invalid_text(msg)
    if problem is not None:  # a lone surrogate or NUL: text that cannot be spoken (audit finding 8)
        raise WsClose(WS_INVALID, "invalid_text", f"the message: {problem}")
    return msg


async def receive_message(
    ws: WebSocket,
    *,
    max_bytes: int,
    idle_s: float,
    idle_since: Callable[[], float | None],
    text_required: bool = True,
) -> dict[str, Any]:
    """The next JSON message; WsClose ``input_timeout`` once idle for ``idle_s``.

    ``idle_since`` says since when nothing has happened (perf_counter), or None while the server is
    still busy with the text it has; it is asked again every half second.
    """
    pending = asyncio.ensure_future(ws.receive())
    try:
        while True:
            since = idle_since()
            wait = 0.5
            if since is not None:
                left = idle_s - (time.perf_counter() - since)
                if left <= 0:
                    raise WsClose(WS_POLICY, "input_timeout", f"no text for {idle_s:.0f} s; closing")
                wait = min(wait, left)
            done, _ = await asyncio.wait({pending}, timeout=wait)
            if done:
                return _parse_message(pending.result(), max_bytes, text_required)
    finally:
        pending.cancel()


def _session_options(first: dict[str, Any]) -> tuple[float, tuple[int, ...]]:
    """Speed and chunk schedule from the first message's ``voice_settings`` and ``generation_config``."""
    settings = first.get("voice_settings") or {}
    config = first.get("generation_config") or {}
    if not isinstance(settings, dict) or not isinstance(config, dict):
        raise WsClose(WS_INVALID, "invalid_message", "voice_settings and generation_config must be objects")
    speed = settings.get("speed", 1.0)
    if not isinstance(speed, int | float) or isinstance(speed, bool):
        raise VoxError("invalid_speed", "voice_settings.speed must be a number")
    schedule = config.get("chunk_length_schedule", DEFAULT_CHUNK_SCHEDULE)
    return float(speed), check_schedule(schedule)


_END = object()
MAX_CONTEXTS = 5  # per socket, as ElevenLabs allows
MAX_CONTEXT_ID = 100


@dataclass
class SpeakerSetup:
    """What every text stream of a socket shares: who speaks, in which voice, to which output."""

    principal: Principal
    style: VoiceStyle
    lexicon: dict[str, str]
    pipeline: SpeechPipeline
    params: _Params


class SocketChannel:
    """One WebSocket: sends with a timeout, receives with the inactivity rule, knows when it is idle."""

    def __init__(self, ws: WebSocket, params: _Params) -> None:
        self.ws = ws
        self.state = ws.app.state
        self.settings = self.state.vv.settings
        self.params = params
        self.last_activity = time.perf_counter()
        self.busy: Callable[[], bool] = lambda: False

    def idle_since(self) -> float | None:
        """Idle: nothing left to render or to end (text waiting in a segmenter does count)."""
        return None if self.busy() else self.last_activity

    async def receive(self, *, text_required: bool = True) -> dict[str, Any]:
        msg = await receive_message(
            self.ws,
            max_bytes=self.settings.ws_max_message_bytes,
            idle_s=self.params.inactivity_s,
            idle_since=self.idle_since,
            text_required=text_required,
        )
        self.last_activity = time.perf_counter()
        return msg

    async def send(self, payload: str | bytes) -> None:
        timeout = float(getattr(self.state, "send_timeout_s", self.settings.stream_send_timeout_s))
        try:
            if isinstance(payload, bytes):
                await asyncio.wait_for(self.ws.send_bytes(payload), timeout)
            else:
                await asyncio.wait_for(self.ws.send_text(payload), timeout)
        except TimeoutError:
            raise WsClose(WS_POLICY, "send_timeout", "the client is not reading the audio") from None
        except (OSError, RuntimeError, WebSocketDisconnect) as exc:  # closed underneath us
            raise ClientGone from exc
        self.last_activity = time.perf_counter()


class TextStream:
    """One stream of text in and audio out: all of a ``stream-input`` socket, or one context of a
    ``multi-stream-input`` socket (then every message it sends carries ``contextId``).

    ``push`` turns messages into segments on a queue; ``write`` renders them (in worker threads, one
    piece at a time) and sends the audio. Text waiting to be rendered is bounded: past the limit
    ``push`` waits, so the reader stops reading and TCP pushes back on the client.
    """

    def __init__(
        self,
        channel: SocketChannel,
        setup: SpeakerSetup,
        session: SpeechSession,
        segmenter: TextSegmenter,
        context_id: str | None = None,
    ) -> None:
        self.channel = channel
        self.state = channel.state
        self.vv = self.state.vv
        self.setup = setup
        self.principal = setup.principal
        self.session = session
        self.segmenter = segmenter
        self.context_id = context_id
        self.settings = self.vv.settings
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pending_chars = 0
        self.room = asyncio.Event()
        self.room.set()
        self.ended = False
        self.ticket: GenerationTicket | None = None
        self.first_arrival: float | None = None
        self.first_audio_sent = False
        self.digest = hashlib.sha256()
        self.completed = False
        self.aligned = False  # an alignment was sent: the next one starts with a space
        self.t_start = time.perf_counter()

    @property
    def busy(self) -> bool:
        return self.pending_chars > 0 or (self.ended and not self.completed)

    # -- input ------------------------------------------------------------------------------------
    async def push(self, msg: dict[str, Any], *, end: bool = False) -> None:
        """Text, ``flush`` or ``try_trigger_generation``; ``end``: no more text (flushes first)."""
        text = msg.get("text") or ""
        segments = self.segmenter.push(text)
        if msg.get("flush") or end:
            segments += self.segmenter.flush()
        elif msg.get("try_trigger_generation"):
            segments += self.segmenter.trigger()
        now = time.perf_counter()
        for segment in segments:
            while self.pending_chars >= self.settings.max_input_chars:
                self.room.clear()
                await self.room.wait()  # backpressure: the writer is behind
            self.pending_chars += len(segment)
            if self.first_arrival is None:
                self.first_arrival = now
            await self.queue.put((segment, now))
        if end:
            await self.end()

    async def end(self) -> None:
        """No more input: what is queued is spoken, text still buffered (never flushed) is dropped."""
        if not self.ended:
            self.ended = True
            await self.queue.put(_END)

    # -- output -----------------------------------------------------------------------------------
    def _tagged(self, meta: dict[str, Any]) -> dict[str, Any]:
        return meta if self.context_id is None else {**meta, "contextId": self.context_id}

    async def send_chunk(self, chunk: SessionChunk) -> None:
        if not chunk.audio:
            return
        self.digest.update(chunk.audio)
        if not self.first_audio_sent and self.first_arrival is not None:
            self.first_audio_sent = True
            self.state.metrics.first_audio_seconds.labels(format=self.session.format).observe(
                time.perf_counter() - self.first_arrival
            )
        meta: dict[str, Any] = {"isFinal": False}
        for key, al in (("normalizedAlignment", chunk.normalized_alignment), ("alignment", chunk.alignment)):
            if al is not None:
                meta[key] = _spaced(al, lead=self.aligned).to_json()
        self.aligned = self.aligned or bool(chunk.alignment and chunk.alignment.chars)
        if chunk.words:
            meta["wordAlignment"] = {
                "words": [w.word for w in chunk.words],
                "wordStartTimesMs": [w.start_ms for w in chunk.words],
                "wordEndTimesMs": [w.end_ms for w in chunk.words],
            }
        if self.channel.params.binary_audio:
            await self.channel.send(chunk.audio)
            if len(meta) > 1:
                await self.channel.send(json.dumps(self._tagged(meta)))
        else:
            audio = base64.b64encode(chunk.audio).decode("ascii")
            await self.channel.send(json.dumps(self._tagged({"audio": audio, **meta})))

    def _prepare(self, segment: str) -> PreparedSpeech | None:
        """Worker thread: plan a segment; the first one opens the generation record (its watermark id)."""
        prepared = self.session.prepare(segment)
        if prepared is not None and self.ticket is None:
            self.ticket = self.vv.generations.begin(prepared, self.principal.key_id)
            self.session.hook = self.vv.watermark_hook(self.ticket.watermark_id)
        return prepared

    async def write(self) -> None:
        """Render and send until the input ends; then the end of the audio and ``isFinal``."""
        while True:
            item = await self.queue.get()
            if item is _END:
                await self.send_chunk(await anyio.to_thread.run_sync(self.session.finish))
                await self.channel.send(json.dumps(self._tagged({"isFinal": True})))
                self.completed = True
                return
            segment, arrival = item
            prepared = await anyio.to_thread.run_sync(self._prepare, segment)
            if prepared is not None:
                pieces = self.session.speak(
                    prepared, arrival=arrival, original=segment, pause_after_s=trailing_pause_s(segment)
                )
                while (chunk := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
                    await self.send_chunk(chunk)
            self.pending_chars -= len(segment)
            if self.pending_chars < self.settings.max_input_chars:
                self.room.set()

    def finish_record(self) -> None:
        """Worker thread: close the generation record and write its audit entry."""
        if self.ticket is None:
            return
        summary = PreparedSpeech(
            pieces=[],
            voice=self.session.voice,
            format=self.session.format,
            speed=self.session.speed,
            sample_rate=self.session.out_sample_rate,
            text_sha256=self.session.text_sha256,
            text_chars=self.session.text_chars,
        )
        total = time.perf_counter() - self.t_start
        if self.session.audio_s > 0:
            self.state.metrics.audio_seconds.inc(self.session.audio_s)
        self.vv.generations.finish(
            self.ticket,
            output_sha256=self.digest.hexdigest(),
            duration_s=self.session.audio_s,
            latency_ms=total * 1000,
            key_id=self.principal.key_id,
            prepared=summary,
            completed=self.completed,
        )


def _spaced(al: CharAlignment, *, lead: bool) -> CharAlignment:
    """A later chunk's alignment starts with a space, so clients that join characters into words across
    chunks (Pipecat keeps a partial word between messages) never glue two words together."""
    if not lead or not al.chars or al.chars[0] == " ":
        return al
    return CharAlignment([" ", *al.chars], [al.starts_ms[0], *al.starts_ms], [0, *al.durations_ms])


def _options_of(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: msg[k] for k in ("voice_settings", "generation_config") if msg.get(k) is not None}


def _open_stream(
    channel: SocketChannel, setup: SpeakerSetup, options: dict[str, Any], context_id: str | None = None
) -> TextStream:
    """A text stream with the speed and chunk schedule of ``options`` (a first message)."""
    speed, schedule = _session_options(options)
    out = setup.params.output
    session = SpeechSession(
        setup.pipeline,
        setup.style,
        fmt=out.format,
        sample_rate=out.sample_rate,
        speed=speed,
        bitrate=out.bitrate,
        lexicon=setup.lexicon,
        cancel=threading.Event(),
    )
    return TextStream(channel, setup, session, TextSegmenter(schedule), context_id)


async def _finish_records(streams: list[TextStream]) -> None:
    for stream in streams:
        try:
            await run_in_threadpool(stream.finish_record)
        except Exception:  # noqa: BLE001 - never mask how the session ended
            log.exception("text stream record not finished")


async def _run_until_done(main: Awaitable[None], others: Callable[[], set[asyncio.Task[None]]]) -> None:
    """Run ``main`` and the tasks ``others()`` names (it may grow) until all end; the first failure
    cancels the rest (a render in a worker thread stops at its next piece) and is raised."""
    first = asyncio.ensure_future(main)
    try:
        while True:
            pending = {t for t in {first, *others()} if not t.done()}
            for task in {first, *others()}:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if not pending:
                return
            await asyncio.wait(pending, timeout=0.25, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in {first, *others()}:
            task.cancel()
        await asyncio.gather(first, *others(), return_exceptions=True)


class TextInputSession:
    """``stream-input``: one text stream; ``{"text": ""}`` ends it, then ``isFinal`` and close 1000."""

    def __init__(self, channel: SocketChannel, setup: SpeakerSetup, first: dict[str, Any]) -> None:
        self.channel = channel
        self.stream = _open_stream(channel, setup, first)
        channel.busy = lambda: self.stream.busy
        self.writer: asyncio.Task[None] | None = None

    async def read(self, first: dict[str, Any]) -> None:
        msg = first
        while True:
            if self.stream.ended:
                raise WsClose(
                    WS_POLICY, "text_after_end", 'text was sent after the end of input ({"text": ""})'
                )
            await self.stream.push(msg, end=msg["text"] == "" and not msg.get("flush"))
            msg = await self.channel.receive()

    async def run(self, first: dict[str, Any]) -> None:
        self.writer = asyncio.create_task(self.stream.write())
        reader = asyncio.create_task(self.read(first))
        try:
            done, _ = await asyncio.wait({reader, self.writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stream.session.cancel.set()
            for task in (reader, self.writer):
                task.cancel()
            results = await asyncio.gather(reader, self.writer, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    def streams(self) -> list[TextStream]:
        return [self.stream]


class MultiContextSession:
    """``multi-stream-input``: up to MAX_CONTEXTS text streams on one socket, each named by the client's
    ``context_id`` (messages without one use the context ``default``).

    A context opens with its first text (``voice_settings`` and ``generation_config`` of that message,
    else of the socket's first message), ``flush`` speaks what it holds, ``close_context`` ends it (text
    never flushed is dropped, flushed text is still spoken) and answers ``{"isFinal": true, "contextId"}``
    after its last audio; the id may then open a new context. ``{"text": "", "context_id"}`` and
    ``{"text": ""}`` only keep the socket alive. ``close_socket`` flushes and ends every context, then
    the socket closes with 1000 once their audio is sent.
    """

    def __init__(self, channel: SocketChannel, setup: SpeakerSetup, first: dict[str, Any]) -> None:
        self.channel = channel
        self.setup = setup
        self.defaults = _options_of(first)
        _session_options(self.defaults)  # a bad default is refused now, not at the first context
        self.contexts: dict[str, TextStream] = {}
        self.options: dict[str, dict[str, Any]] = {}  # settings sent with a context's opening " "
        self.writers: dict[TextStream, asyncio.Task[None]] = {}
        self.done: list[TextStream] = []
        channel.busy = lambda: any(s.busy for s in self.contexts.values())

    def _context_id(self, msg: dict[str, Any]) -> str:
        cid = msg.get("context_id", msg.get("contextId"))
        if cid is None:
            return "default"
        if not isinstance(cid, str) or not 1 <= len(cid) <= MAX_CONTEXT_ID:
            raise WsClose(
                WS_INVALID, "invalid_message", f"context_id must be a string of 1-{MAX_CONTEXT_ID} characters"
            )
        return cid

    async def _retire(self, stream: TextStream) -> None:
        """A context's writer ended (isFinal sent): forget it and close its record."""
        await stream.write()
        if self.contexts.get(stream.context_id or "") is stream:
            del self.contexts[stream.context_id or ""]
        self.done.append(stream)
        await run_in_threadpool(stream.finish_record)

    def _open(self, cid: str, msg: dict[str, Any]) -> TextStream:
        if len(self.contexts) >= MAX_CONTEXTS:
            raise WsClose(
                WS_POLICY,
                "too_many_contexts",
                f"at most {MAX_CONTEXTS} contexts may be open on one socket; close one first",
            )
        options = {**self.defaults, **self.options.pop(cid, {}), **_options_of(msg)}
        stream = _open_stream(self.channel, self.setup, options, cid)
        self.contexts[cid] = stream
        self.writers[stream] = asyncio.create_task(self._retire(stream))
        return stream

    async def handle(self, msg: dict[str, Any]) -> bool:
        """One message; False once ``close_socket`` came (nothing more is read)."""
        if msg.get("close_socket"):
            for open_stream in list(self.contexts.values()):
                if not open_stream.ended:
                    await open_stream.push({"text": ""}, end=True)
            return False
        cid = self._context_id(msg)
        stream = self.contexts.get(cid)
        if msg.get("close_context"):
            self.options.pop(cid, None)
            if stream is not None:
                await stream.end()
            return True
        text = msg.get("text") or ""
        if not text.strip() and not msg.get("flush"):
            # A keep-alive, or a context's opening " " (it opens with its first words, with these settings)
            if _options_of(msg) and stream is None:
                _session_options(_options_of(msg))  # refused now if bad
                self.options[cid] = _options_of(msg)
            return True
        if stream is None or stream.ended:  # an id used again after close_context: a new context
            stream = self._open(cid, msg)
        await stream.push(msg)
        return True

    async def read(self, first: dict[str, Any]) -> None:
        msg = first
        while await self.handle(msg):
            msg = await self.channel.receive(text_required=False)

    async def run(self, first: dict[str, Any]) -> None:
        try:
            await _run_until_done(self.read(first), lambda: set(self.writers.values()))
        finally:
            for stream in self.writers:
                stream.session.cancel.set()  # a render in a worker thread stops at its next piece

    def streams(self) -> list[TextStream]:
        """The contexts whose records are still open (retired ones closed theirs)."""
        return [s for s in self.writers if s not in self.done]


async def _close(ws: WebSocket, code: int, reason: str, message: str | None = None) -> None:
    """Best effort: an error message, then the close frame; a client that is not reading gets neither."""
    if ws.application_state != WebSocketState.CONNECTED:
        return
    try:
        with anyio.fail_after(2.0):
            if message is not None:
                await ws.send_text(json.dumps({"error": {"code": reason, "message": message}}))
            await ws.close(code=code, reason=reason[:120])
    except Exception:  # noqa: BLE001 - the connection is already gone or stuck
        log.debug("websocket close not delivered code=%d reason=%s", code, reason)


def _first_message_key(first: dict[str, Any]) -> str | None:
    """The key in a first message: ``xi_api_key``, ``xi-api-key`` or ``authorization: "Bearer ..."``."""
    for name in ("xi_api_key", "xi-api-key", "authorization"):
        value = first.get(name)
        if isinstance(value, str) and value.strip():
            return _bearer(value)
    return None


async def _serve(
    ws: WebSocket, voice_id: str, name: str, kind: type[TextInputSession | MultiContextSession]
) -> None:
    """Everything both WebSocket routes share: parameters, key (headers, query or first message),
    voice, admission, the session's run, and a close code for however it ended."""
    state = ws.app.state
    vv = state.vv
    await ws.accept()
    admitted = False
    session_obj: TextInputSession | MultiContextSession | None = None
    t_start = time.perf_counter()
    try:
        try:
            params = _ws_params(ws)
            if kind is MultiContextSession and params.binary_audio:
                raise VoxError("invalid_parameter", "binary_audio is not available on multi-stream-input")
            secret = _ws_secret(ws)
            principal = await run_in_threadpool(_authenticate, ws, secret) if secret else None
            channel = SocketChannel(ws, params)
            first = await channel.receive(text_required=kind is TextInputSession)
            if principal is None:
                principal = await run_in_threadpool(_authenticate, ws, _first_message_key(first))
            style = await run_in_threadpool(vv.voice_for, principal, voice_id)
            lexicon = await run_in_threadpool(vv.lexicon_for, principal)
            pipeline = await run_in_threadpool(lambda: vv.pipeline)
            setup = SpeakerSetup(principal, style, lexicon, pipeline, params)
            session_obj = kind(channel, setup, first)
            state.admission.reserve()
            admitted = True
        except VoxError as exc:
            state.metrics.errors.labels(code=exc.code).inc()
            raise _close_for(exc) from None
        state.metrics.active_syntheses.inc()
        try:
            with state.admission.running():
                await session_obj.run(first)
        except VoxError as exc:
            raise _close_for(exc) from None
        finally:
            state.metrics.active_syntheses.dec()
        await _close(ws, WS_NORMAL, "done")
    except WsClose as exc:
        log.info("%s closed code=%d reason=%s", name, exc.code, exc.reason)
        await _close(ws, exc.code, exc.reason, exc.message)
    except ClientGone:
        log.info("%s client went away", name)
    except Exception:
        log.exception("%s failed", name)
        await _close(ws, WS_INTERNAL, "internal_error", "internal error; the server log has the details")
    finally:
        if admitted:
            state.admission.release()
        if session_obj is not None:
            await _finish_records(session_obj.streams())
        log.info("%s voice=%s session_s=%.2f", name, voice_id, time.perf_counter() - t_start)


@router.websocket("/v1/text-to-speech/{voice_id}/stream-input")
async def stream_input(ws: WebSocket, voice_id: str) -> None:
    """Text in as it is written, audio out as it is rendered (ElevenLabs' stream-input protocol)."""
    await _serve(ws, voice_id, "stream-input", TextInputSession)


@router.websocket("/v1/text-to-speech/{voice_id}/multi-stream-input")
async def multi_stream_input(ws: WebSocket, voice_id: str) -> None:
    """Several independent text streams on one socket (ElevenLabs' multi-context protocol; Pipecat's
    and LiveKit's ElevenLabs services use it)."""
    await _serve(ws, voice_id, "multi-stream-input", MultiContextSession)


# The authorisation suite reads the scope a route demands from this attribute (the WebSocket routes
# authenticate inside, so that refusals can close with a code instead of failing the handshake).
stream_input.required_scope = "speech:create"  # type: ignore[attr-defined]
multi_stream_input.required_scope = "speech:create"  # type: ignore[attr-defined]
