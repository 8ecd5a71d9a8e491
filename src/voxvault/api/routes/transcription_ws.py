"""Streaming transcription: ``WS /v1/speech-to-text/stream`` (scope ``speech:transcribe``).

Query: ``model`` (``base`` / ``tiny.en``; ``VOXVAULT_ASR_MODEL`` if absent), ``language`` (ISO 639-1; detected
if absent), ``encoding`` (default ``pcm_s16le``), ``sample_rate`` (of PCM: 8000-48000, default 16000), and
the key as an ``Authorization: Bearer`` header or ``?api_key=`` (browsers cannot set WebSocket headers).

The client sends binary frames of audio in the ``encoding`` (audio/stream_decode.py): ``pcm_s16le`` mono
16-bit PCM, ``opus`` one raw Opus packet per frame (WebCodecs ``AudioEncoder`` output, RTP payloads), or
``ogg_opus`` an Ogg/Opus stream cut anywhere (``ffmpeg ... -c:a libopus -f ogg -``); Opus is decoded at
48 kHz and mixed to mono. To finish, the client sends the text message ``{"type": "end"}``. The
server answers ``{"type": "ready"}``, then as audio arrives ``{"type": "partial", "text", "start", "end"}``
(what the unsettled audio says so far; it may still change: while that audio is short, from a glimpse,
a quick encoder pass on the audio alone, so the first words come a few tenths of a second after they are
spoken) and ``{"type": "final", "id", "start", "end",
"text", "words"}`` for each segment that has settled (ended at least :data:`SETTLE_S` before the newest
audio; a segment never changes once final), and at the end ``{"type": "done", "text", "duration",
"language"}`` and close code 1000.

Bounded: the unsettled audio is at most :data:`MAX_BUFFER_S` (past it the oldest segments are made final),
the server stops reading while more than :data:`MAX_BACKLOG_S` of audio waits for the model (the client's
sends block: backpressure, not a refusal), and the whole session is at most ``VOXVAULT_ASR_MAX_SECONDS``.
Refusals send ``{"error": {"code", "message"}}`` and close: 1008 for a bad key, scope or parameter, audio too
long or an idle client (``VOXVAULT_WS_INACTIVITY_TIMEOUT_S``), 1007 for a malformed message or audio that
does not decode in the encoding (``invalid_audio``), 1009 for a
frame over ``VOXVAULT_WS_MAX_MESSAGE_BYTES``, 1013 when too many transcriptions run.
Nothing is stored; one audit entry (``transcription.created``, metadata only) per session.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import soxr
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from voxvault.api.deps import (
    TranscriptionGateDep,
    VoxVaultDep,
    bearer,
    check_key,
    demand_scope,
)
from voxvault.api.websocket import (
    WS_INVALID,
    WS_NORMAL,
    WS_POLICY,
    WS_TOO_BIG,
    ClientGone,
    WsClose,
    close_for,
    close_socket,
)
from voxvault.audio.stream_decode import ENCODINGS, stream_decoder
from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault

router = APIRouter(tags=["transcription"])
log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
#: Run the whole model (word timestamps, finals) again once this much new audio arrived ...
STEP_S = 1.0
#: ... once the unsettled audio is this long (shorter, nothing in it can be final yet).
FULL_MIN_S = 2.5
#: Until then, partials come from glimpses (engine.glimpse: the encoder on the audio alone, greedy, no
#: timestamps; 5-7x cheaper than a step): every FIRST_GLIMPSE_S of new audio until something is heard, so
#: the first words show a few tenths of a second after they are spoken, then every GLIMPSE_S.
FIRST_GLIMPSE_S = 0.2
GLIMPSE_S = 0.5
#: A segment that ended this long before the newest audio is final.
SETTLE_S = 2.0
#: Unsettled audio held at most; past it the segments recognised so far become final.
MAX_BUFFER_S = 25.0
#: Stop reading from the client while this much audio waits for the model.
MAX_BACKLOG_S = 30.0
SCOPE = "speech:transcribe"
ROUTE = "/v1/speech-to-text/stream"


@dataclass
class StreamState:
    """The audio not yet final and what was said before it (pure: no I/O, no threads)."""

    offset: float = 0.0  # seconds of the stream before buffer[0]
    buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    fresh: int = 0  # samples that arrived since the whole model last ran
    unseen: int = 0  # samples that arrived since the last step (whole model or glimpse)
    received: int = 0  # samples in the whole stream
    finals: list[str] = field(default_factory=list)
    next_id: int = 0
    language: str | None = None
    last_partial: str = ""

    def feed(self, samples: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer, samples]) if self.buffer.size else samples
        self.fresh += samples.size
        self.unseen += samples.size
        self.received += samples.size

    @property
    def backlog_s(self) -> float:
        return self.fresh / SAMPLE_RATE


def recognise_step(
    engine: Any, options: Any, state: StreamState, audio: np.ndarray, final: bool
) -> tuple[list[dict[str, Any]], int]:
    """Run the model on ``audio``, the unsettled audio when the step began (worker thread).

    Returns the messages to send, in order, and how many samples at the front of the buffer became final
    (the caller drops them: audio keeps arriving at the back meanwhile).
    """
    from voxvault.engines.whisper import SILENCE_PEAK, TranscribeOptions

    length = audio.size / SAMPLE_RATE
    segments: list[Any] = []
    language: str | None = None
    if audio.size >= SAMPLE_RATE // 10 and float(np.max(np.abs(audio))) >= SILENCE_PEAK:
        opts = TranscribeOptions(
            language=state.language or options.language,
            prompt=(" ".join(state.finals)[-200:] or None),
            word_timestamps=True,
            beam_size=options.beam_size,
            batch_size=1,
        )
        result = engine.recognize(audio, SAMPLE_RATE, opts)
        segments = list(result)
        language = result.info.language
    if final:
        settled, pending = segments, []
    else:
        settled = [s for s in segments if s.end <= length - SETTLE_S]
        pending = segments[len(settled) :]
        if length > MAX_BUFFER_S and not settled:  # one run-on segment: keep everything but the newest
            settled, pending = segments[:-1] or segments, segments[-1:] if len(segments) > 1 else []
    if settled and state.language is None:
        # Detected on the audio of the first final segment, then kept: half a second of speech is too
        # little to tell languages apart (it heard English as Arabic), so partials do not decide it.
        state.language = language
    messages: list[dict[str, Any]] = []
    for seg in settled:
        text = seg.text.strip()
        if text:
            state.finals.append(text)
            messages.append(
                {
                    "type": "final",
                    "id": state.next_id,
                    "start": round(state.offset + seg.start, 3),
                    "end": round(state.offset + seg.end, 3),
                    "text": text,
                    "words": [
                        {
                            "word": w.word.strip(),
                            "start": round(state.offset + w.start, 3),
                            "end": round(state.offset + w.end, 3),
                            "probability": round(w.probability, 4),
                        }
                        for w in seg.words
                    ],
                }
            )
            state.next_id += 1
    # Drop the audio of what became final; with nothing heard in a long buffer, keep only its tail.
    if final:
        cut = length
    elif settled:
        cut = float(settled[-1].end)
    elif length > MAX_BUFFER_S and not pending:
        cut = length - SETTLE_S
    else:
        cut = 0.0
    partial = " ".join(s.text.strip() for s in pending).strip()
    if not final and partial and partial != state.last_partial:
        messages.append(
            {
                "type": "partial",
                "start": round(state.offset + pending[0].start, 3),
                "end": round(state.offset + length, 3),
                "text": partial,
            }
        )
    state.last_partial = partial
    return messages, min(audio.size, int(cut * SAMPLE_RATE))


def glimpse_step(engine: Any, options: Any, state: StreamState, audio: np.ndarray) -> list[dict[str, Any]]:
    """A partial from a glimpse at the unsettled audio (worker thread); nothing becomes final here."""
    language = state.language or options.language
    seen = engine.glimpse(audio, language, " ".join(state.finals)[-200:] or None)
    text = seen.text
    if not any(c.isalnum() for c in text) or text == state.last_partial:
        return []  # nothing heard yet (or only punctuation), or nothing new
    state.last_partial = text
    return [
        {
            "type": "partial",
            "start": round(state.offset + seen.start, 3),
            "end": round(state.offset + audio.size / SAMPLE_RATE, 3),
            "text": text,
        }
    ]


@dataclass
class _Params:
    model: str
    language: str | None
    sample_rate: int
    encoding: str = "pcm_s16le"


def _params(ws: WebSocket, default_model: str) -> _Params:
    from voxvault.engines.whisper import MODEL_NAMES

    q = ws.query_params
    model = q.get("model") or default_model
    if model not in MODEL_NAMES:
        raise VoxError("unsupported_model", f"model must be one of {', '.join(MODEL_NAMES)}")
    encoding = q.get("encoding") or "pcm_s16le"
    if encoding not in ENCODINGS:
        raise VoxError("unsupported_encoding", f"encoding must be one of {', '.join(ENCODINGS)}")
    try:
        rate = int(q.get("sample_rate") or SAMPLE_RATE)
    except ValueError:
        rate = 0
    if not 8_000 <= rate <= 48_000:
        raise VoxError("invalid_sample_rate", "sample_rate must be an integer from 8000 to 48000")
    return _Params(model, (q.get("language") or None), rate, encoding)


def _authenticate(ws: WebSocket, vv: VoxVault) -> Principal:
    """The key from a header or ``?api_key=`` (browsers cannot set WebSocket headers), with the scope."""
    q = ws.query_params
    secret = (
        bearer(ws.headers.get("authorization"))
        or bearer(q.get("api_key"))
        or bearer(ws.headers.get("xi-api-key"))
    )
    principal = check_key(vv, secret, "send an API key: Authorization: Bearer <key> or ?api_key=")
    return demand_scope(vv, principal, SCOPE, target=ROUTE, method="WEBSOCKET")


class _Session:
    """One socket: a reader that feeds the state (pausing when the model falls behind) and a runner."""

    def __init__(self, ws: WebSocket, engine: Any, options: Any, params: _Params, limits: Any) -> None:
        self.ws = ws
        self.engine = engine
        self.options = options
        self.state = StreamState()
        self.ended = False
        self.wake = anyio.Event()
        self.drained = anyio.Event()
        self.drained.set()
        self.limits = limits
        self.decoder = stream_decoder(params.encoding, params.sample_rate)
        self.resampler = (
            soxr.ResampleStream(self.decoder.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            if self.decoder.rate != SAMPLE_RATE
            else None
        )
        self.rate = self.decoder.rate
        self.first_partial_s: float | None = None
        self.started = time.perf_counter()

    async def read(self) -> None:
        settings = self.limits
        while not self.ended:
            if self.state.backlog_s > MAX_BACKLOG_S:
                self.drained = anyio.Event()
                await self.drained.wait()  # backpressure: the client's sends wait in the TCP window
            with anyio.move_on_after(settings.ws_inactivity_timeout_s) as scope:
                message = await self.ws.receive()
            if scope.cancelled_caught:
                raise WsClose(WS_POLICY, "inactive", 'no audio for too long; send {"type": "end"} to finish')
            if message["type"] == "websocket.disconnect":
                raise ClientGone()
            data = message.get("bytes")
            text = message.get("text")
            size = len(data) if data is not None else len((text or "").encode())
            if size > settings.ws_max_message_bytes:
                raise WsClose(
                    WS_TOO_BIG,
                    "message_too_big",
                    f"frames are limited to {settings.ws_max_message_bytes} bytes",
                )
            if data is not None:
                try:
                    pcm = self.decoder.decode(data)
                except VoxError as exc:
                    raise WsClose(WS_INVALID, exc.code, exc.message) from None
                if self.resampler is not None:
                    pcm = np.asarray(self.resampler.resample_chunk(pcm, last=False), dtype=np.float32)
                if (self.state.received + pcm.size) / SAMPLE_RATE > settings.asr_max_seconds:
                    raise WsClose(
                        WS_POLICY, "audio_too_long", f"a stream is limited to {settings.asr_max_seconds:g} s"
                    )
                self.state.feed(pcm)
                self.wake.set()
                continue
            try:
                body = json.loads(text or "")
            except ValueError:
                raise WsClose(WS_INVALID, "invalid_message", "text messages must be JSON") from None
            if not isinstance(body, dict) or body.get("type") != "end":
                raise WsClose(WS_INVALID, "invalid_message", 'the only text message is {"type": "end"}')
            if self.resampler is not None:
                tail = np.asarray(
                    self.resampler.resample_chunk(np.zeros(0, np.float32), last=True), np.float32
                )
                self.state.feed(tail)
            self.ended = True
            self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = anyio.Event()
            step = self._due()
            if step is None:
                continue
            final = step == "final"
            state = self.state
            audio, state.unseen = state.buffer, 0
            if step == "glimpse":
                messages = await run_in_threadpool(glimpse_step, self.engine, self.options, state, audio)
            else:
                state.fresh = 0
                messages, cut = await run_in_threadpool(
                    recognise_step, self.engine, self.options, state, audio, final
                )
                state.buffer = state.buffer[cut:].copy()
                state.offset += cut / SAMPLE_RATE
                self.drained.set()
            for message in messages:
                if message["type"] == "partial" and self.first_partial_s is None:
                    self.first_partial_s = time.perf_counter() - self.started
                await self.ws.send_text(json.dumps(message))
            if final:
                return
            if self._due() is not None:
                self.wake.set()

    def _due(self) -> str | None:
        """The step to run now: the whole model to make segments final, a glimpse for a partial, or none."""
        state = self.state
        if self.ended:
            return "final"
        if state.backlog_s >= STEP_S and state.buffer.size >= FULL_MIN_S * SAMPLE_RATE:
            return "full"
        if state.buffer.size >= FULL_MIN_S * SAMPLE_RATE:
            return None  # the whole model's steps bring the partials from here, as they did before
        heard = state.finals or state.last_partial
        if state.unseen >= (GLIMPSE_S if heard else FIRST_GLIMPSE_S) * SAMPLE_RATE:
            return "glimpse"
        return None


async def _serve(session: _Session) -> None:
    """Reader and runner side by side; the first failure of either ends both (and is re-raised bare)."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.read)
            await session.run()
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


@router.websocket(ROUTE)
async def stream_transcription(ws: WebSocket, vv: VoxVaultDep, gate: TranscriptionGateDep) -> None:
    """PCM in, partial and final transcript segments out (see the module docstring)."""
    await ws.accept()
    session_id = uuid.uuid4().hex
    admitted = False
    started = False
    session: _Session | None = None
    principal: Principal | None = None
    error: str | None = None
    completed = False
    t0 = time.perf_counter()
    try:
        try:
            principal = await run_in_threadpool(_authenticate, ws, vv)
            params = _params(ws, vv.settings.asr_model)
            gate.admit()
            admitted = True
            await run_in_threadpool(gate.run)
            started = True
            engine = await run_in_threadpool(vv.engines.transcriber, params.model)
            from voxvault.engines.whisper import TranscribeOptions

            options = engine.check_options(
                TranscribeOptions(language=params.language, beam_size=1, batch_size=1)
            )
        except VoxError as exc:
            error = exc.code
            raise close_for(exc) from None
        session = _Session(ws, engine, options, params, vv.settings)
        await ws.send_text(
            json.dumps(
                {
                    "type": "ready",
                    "session_id": session_id,
                    "model": params.model,
                    "sample_rate": params.sample_rate,
                    "encoding": params.encoding,
                }
            )
        )
        await _serve(session)
        state = session.state
        done = {
            "type": "done",
            "text": " ".join(state.finals),
            "duration": round(state.received / SAMPLE_RATE, 3),
            "language": state.language or options.language or "",
        }
        await ws.send_text(json.dumps(done))
        completed = True
        await close_socket(ws, WS_NORMAL, "done")
    except WsClose as exc:
        error = error or exc.reason
        await close_socket(ws, exc.code, exc.reason, exc.message)
    except (ClientGone, WebSocketDisconnect):
        error = "client_gone"
    except Exception:
        error = "internal_error"
        log.exception("speech-to-text stream failed id=%s", session_id)
        await close_socket(ws, 1011, "internal_error", "internal error; the server log has the details")
    finally:
        if admitted:
            gate.done(started)
        if principal is not None:
            audio_s = session.state.received / SAMPLE_RATE if session else 0.0
            details = {
                "route": "stream",
                "audio_s": round(audio_s, 3),
                "segments": session.state.next_id if session else 0,
                "first_partial_ms": round(session.first_partial_s * 1000)
                if session and session.first_partial_s
                else None,
                "latency_ms": round((time.perf_counter() - t0) * 1000),
                "completed": completed,
            }
            if error:
                details["error"] = error
            await run_in_threadpool(
                vv.audit.record,
                "transcription.created",
                actor=principal.key_id,
                target=session_id,
                details=details,
            )
            log.info(
                "speech-to-text stream id=%s audio_s=%.2f completed=%s error=%s",
                session_id,
                audio_s,
                completed,
                error,
            )


# The authorisation suite reads the scope from here (the route authenticates inside, to close with a code).
stream_transcription.required_scope = SCOPE  # type: ignore[attr-defined]
