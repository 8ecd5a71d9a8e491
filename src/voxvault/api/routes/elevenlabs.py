"""ElevenLabs-compatible speech: whole file, HTTP stream, and the text-input WebSocket.

* ``POST /v1/text-to-speech/{voice_id}``: the whole file in one response.
* ``POST /v1/text-to-speech/{voice_id}/stream``: chunked audio, the first phrase while the rest renders.
* ``WS /v1/text-to-speech/{voice_id}/stream-input``: the client sends text as its language model writes
  it (``{"text": ...}``, ``"flush": true``, ``{"text": ""}`` to end); the server answers with audio
  chunks (JSON with base64 audio, or binary frames with ``binary_audio=true``), character alignment in
  ElevenLabs' shape and voxvault's word timings, then ``{"isFinal": true}`` and close code 1000.
* ``WS /v1/text-to-speech/{voice_id}/multi-stream-input``: several such streams on one socket.

The WebSocket sessions are served by :mod:`voxvault.api.text_input`; refusals close with a code a client
can act on (:mod:`voxvault.api.websocket`). The message shapes are documented in docs/streaming.md.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from voxvault.api.deps import (
    AdmissionDep,
    MetricsDep,
    SendTimeoutDep,
    SpeechCreator,
    SpeechStreamsDep,
    VoxVaultDep,
)
from voxvault.api.output_format import DEFAULT_OUTPUT_FORMAT, OutputFormat, parse_output_format
from voxvault.api.streaming import ClosingStreamingResponse
from voxvault.api.text_input import MultiContextSession, SocketServer, TextInputSession, serve
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault
from voxvault.synthesis import PreparedSpeech
from voxvault.synthesis.pipeline import FIRST_PIECE_PHONEMES, ChunkHook, SpeechPipeline
from voxvault.synthesis.streaming import CharAlignment, SessionChunk, SpeechSession
from voxvault.text.ssml import is_ssml

router = APIRouter(tags=["elevenlabs"])
log = logging.getLogger(__name__)


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
    vv: VoxVault,
    principal: Principal,
    voice_id: str,
    body: TextToSpeechRequest,
    output_format: str,
    *,
    short_start: bool,
) -> tuple[PreparedSpeech, _SessionAudio]:
    """Everything a request can get wrong is checked here, before a response starts."""
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
    at the output format's own bitrate for ``SpeechStreams.start``, and each chunk with its timings kept
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


@router.post(
    "/v1/text-to-speech/{voice_id}",
    response_class=Response,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "The whole audio file."}},
)
def text_to_speech(
    voice_id: str,
    body: TextToSpeechRequest,
    vv: VoxVaultDep,
    streams: SpeechStreamsDep,
    principal: SpeechCreator,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> Response:
    """The whole file, sent when all of it is rendered (the streaming benchmark's baseline)."""
    t_start = time.perf_counter()
    prepared, render = _prepare(vv, principal, voice_id, body, output_format, short_start=False)
    chunks, ticket = streams.start(principal, prepared, t_start, render)
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
    vv: VoxVaultDep,
    streams: SpeechStreamsDep,
    principal: SpeechCreator,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> StreamingResponse:
    """Chunked audio: a short first piece leaves as soon as it is rendered, the rest follows."""
    t_start = time.perf_counter()
    prepared, render = _prepare(vv, principal, voice_id, body, output_format, short_start=True)
    chunks, ticket = streams.start(principal, prepared, t_start, render)
    return ClosingStreamingResponse(
        chunks, media_type=prepared.content_type, headers={"x-generation-id": ticket.id}
    )


@router.post("/v1/text-to-speech/{voice_id}/with-timestamps", response_class=JSONResponse)
def text_to_speech_with_timestamps(
    voice_id: str,
    body: TextToSpeechRequest,
    vv: VoxVaultDep,
    streams: SpeechStreamsDep,
    principal: SpeechCreator,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> JSONResponse:
    """The whole file as ``audio_base64`` with per-character ``alignment`` (the text as sent) and
    ``normalized_alignment`` (as spoken: numbers as words), in seconds; times come from the model's
    own durations (docs/streaming.md)."""
    t_start = time.perf_counter()
    prepared, render = _prepare(vv, principal, voice_id, body, output_format, short_start=False)
    chunks, ticket = streams.start(principal, prepared, t_start, render)
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
    vv: VoxVaultDep,
    streams: SpeechStreamsDep,
    principal: SpeechCreator,
    output_format: OutputFormatQuery = DEFAULT_OUTPUT_FORMAT,
) -> StreamingResponse:
    """Newline-delimited JSON, one line per audio chunk: ``audio_base64``, ``alignment`` and
    ``normalized_alignment`` with times in seconds from the start of the whole audio (as ElevenLabs')."""
    t_start = time.perf_counter()
    prepared, render = _prepare(vv, principal, voice_id, body, output_format, short_start=True)
    chunks, ticket = streams.start(principal, prepared, t_start, render)
    return ClosingStreamingResponse(
        _ndjson(chunks, render.timed),
        media_type="application/x-ndjson",
        headers={"x-generation-id": ticket.id},
    )


# ------------------------------------------------------------------------------------------- WebSocket
# The sessions live in voxvault.api.text_input; these routes only hand the socket over.
@router.websocket("/v1/text-to-speech/{voice_id}/stream-input")
async def stream_input(
    ws: WebSocket,
    voice_id: str,
    vv: VoxVaultDep,
    metrics: MetricsDep,
    admission: AdmissionDep,
    send_timeout_s: SendTimeoutDep,
) -> None:
    """Text in as it is written, audio out as it is rendered (ElevenLabs' stream-input protocol)."""
    server = SocketServer(vv, metrics, admission, send_timeout_s)
    await serve(ws, server, voice_id, "stream-input", TextInputSession)


@router.websocket("/v1/text-to-speech/{voice_id}/multi-stream-input")
async def multi_stream_input(
    ws: WebSocket,
    voice_id: str,
    vv: VoxVaultDep,
    metrics: MetricsDep,
    admission: AdmissionDep,
    send_timeout_s: SendTimeoutDep,
) -> None:
    """Several independent text streams on one socket (ElevenLabs' multi-context protocol; Pipecat's
    and LiveKit's ElevenLabs services use it)."""
    server = SocketServer(vv, metrics, admission, send_timeout_s)
    await serve(ws, server, voice_id, "multi-stream-input", MultiContextSession)


# The authorisation suite reads the scope a route demands from this attribute (the WebSocket routes
# authenticate inside, so that refusals can close with a code instead of failing the handshake).
stream_input.required_scope = "speech:create"  # type: ignore[attr-defined]
multi_stream_input.required_scope = "speech:create"  # type: ignore[attr-defined]
