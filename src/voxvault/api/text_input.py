"""ElevenLabs' text-input WebSockets as a service the two routes hand their socket to.

* ``stream-input`` (:class:`TextInputSession`): the client sends text as its language model writes it
  (``{"text": ...}``, ``"flush": true``, ``{"text": ""}`` to end); the server answers with audio chunks
  (JSON with base64 audio, or binary frames with ``binary_audio=true``), character alignment in
  ElevenLabs' shape and voxvault's word timings, then ``{"isFinal": true}`` and close code 1000.
* ``multi-stream-input`` (:class:`MultiContextSession`): several such text streams on one socket.

:func:`serve` does what both share: parameters, key, voice, admission, the session's run, and a close
code (:mod:`voxvault.api.websocket`) for however it ended. The message shapes are in docs/streaming.md.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from voxvault.api.deps import bearer, check_key, demand_scope
from voxvault.api.metrics import Metrics
from voxvault.api.output_format import DEFAULT_OUTPUT_FORMAT, OutputFormat, parse_output_format
from voxvault.api.websocket import (
    WS_INTERNAL,
    WS_INVALID,
    WS_NORMAL,
    WS_POLICY,
    WS_TOO_BIG,
    WS_UNSUPPORTED,
    ClientGone,
    WsClose,
    close_for,
    close_socket,
    query_bool,
)
from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault
from voxvault.synthesis import PreparedSpeech
from voxvault.synthesis.admission import Admission
from voxvault.synthesis.pipeline import SpeechPipeline, VoiceStyle
from voxvault.synthesis.streaming import (
    DEFAULT_CHUNK_SCHEDULE,
    CharAlignment,
    SessionChunk,
    SpeechSession,
    TextSegmenter,
    check_schedule,
    trailing_pause_s,
)
from voxvault.text.validity import find_invalid_text

log = logging.getLogger(__name__)

MAX_INACTIVITY_S = 180.0
SCOPE = "speech:create"
_KEY_HOWTO = "send an API key: xi-api-key header, ?xi_api_key= or xi_api_key in the first message"


def _ws_secret(ws: WebSocket) -> str | None:
    """The key from headers (server clients) or the query string (browsers cannot set WS headers)."""
    q = ws.query_params
    return (
        bearer(ws.headers.get("authorization"))
        or bearer(ws.headers.get("xi-api-key"))
        or bearer(q.get("xi_api_key"))
        or bearer(q.get("authorization"))
    )


def _authenticate(ws: WebSocket, vv: VoxVault, secret: str | None) -> Principal:
    """deps' one key check, with the places a WebSocket client can put its key, and the scope."""
    principal = check_key(vv, secret, _KEY_HOWTO)
    target = getattr(ws.scope.get("route"), "path", ws.url.path)
    return demand_scope(vv, principal, SCOPE, target=target, method="WEBSOCKET")


@dataclass
class _Params:
    output: OutputFormat
    inactivity_s: float
    binary_audio: bool


def _ws_params(ws: WebSocket, default_idle: float) -> _Params:
    q = ws.query_params
    output = parse_output_format(q.get("output_format") or DEFAULT_OUTPUT_FORMAT)
    try:
        inactivity = float(q.get("inactivity_timeout") or default_idle)
    except ValueError:
        raise VoxError("invalid_parameter", "inactivity_timeout must be a number of seconds") from None
    if not 1 <= inactivity <= MAX_INACTIVITY_S:
        raise VoxError(
            "invalid_parameter", f"inactivity_timeout must be between 1 and {MAX_INACTIVITY_S:.0f} s"
        )
    return _Params(output, inactivity, query_bool(q.get("binary_audio"), "binary_audio"))


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


@dataclass(frozen=True)
class SocketServer:
    """What a socket uses of the server; the routes fill it from their typed dependencies (api.deps)."""

    vv: VoxVault
    metrics: Metrics
    admission: Admission
    send_timeout_s: float


class SocketChannel:
    """One WebSocket: sends with a timeout, receives with the inactivity rule, knows when it is idle."""

    def __init__(self, ws: WebSocket, server: SocketServer, params: _Params) -> None:
        self.ws = ws
        self.server = server
        self.settings = server.vv.settings
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
        timeout = self.server.send_timeout_s
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
        self.metrics = channel.server.metrics
        self.vv = channel.server.vv
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
        # The one record of this stream's output: opened by its first speakable segment.
        self.record = self.vv.generation.session(session, self.principal.key_id)
        self.first_arrival: float | None = None
        self.first_audio_sent = False
        self.completed = False
        self.aligned = False  # an alignment was sent: the next one starts with a space

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
        self.record.add(chunk.audio)
        if not self.first_audio_sent and self.first_arrival is not None:
            self.first_audio_sent = True
            self.metrics.first_audio_seconds.labels(format=self.session.format).observe(
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
        return self.record.prepare(segment)

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
        """Worker thread: close the generation record and write its audit entry (once)."""
        if self.record.finish(completed=self.completed) and self.session.audio_s > 0:
            self.metrics.audio_seconds.inc(self.session.audio_s)


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


def _first_message_key(first: dict[str, Any]) -> str | None:
    """The key in a first message: ``xi_api_key``, ``xi-api-key`` or ``authorization: "Bearer ..."``."""
    for name in ("xi_api_key", "xi-api-key", "authorization"):
        value = first.get(name)
        if isinstance(value, str) and value.strip():
            return bearer(value)
    return None


async def serve(
    ws: WebSocket,
    server: SocketServer,
    voice_id: str,
    name: str,
    kind: type[TextInputSession | MultiContextSession],
) -> None:
    """Everything both WebSocket routes share: parameters, key (headers, query or first message),
    voice, admission, the session's run, and a close code for however it ended."""
    vv, metrics, admission = server.vv, server.metrics, server.admission
    await ws.accept()
    admitted = False
    session_obj: TextInputSession | MultiContextSession | None = None
    t_start = time.perf_counter()
    try:
        try:
            params = _ws_params(ws, vv.settings.ws_inactivity_timeout_s)
            if kind is MultiContextSession and params.binary_audio:
                raise VoxError("invalid_parameter", "binary_audio is not available on multi-stream-input")
            secret = _ws_secret(ws)
            principal = await run_in_threadpool(_authenticate, ws, vv, secret) if secret else None
            channel = SocketChannel(ws, server, params)
            first = await channel.receive(text_required=kind is TextInputSession)
            if principal is None:
                principal = await run_in_threadpool(_authenticate, ws, vv, _first_message_key(first))
            style = await run_in_threadpool(vv.voice_for, principal, voice_id)
            lexicon = await run_in_threadpool(vv.lexicon_for, principal)
            pipeline = await run_in_threadpool(lambda: vv.pipeline)
            setup = SpeakerSetup(principal, style, lexicon, pipeline, params)
            session_obj = kind(channel, setup, first)
            admission.reserve()
            admitted = True
        except VoxError as exc:
            metrics.errors.labels(code=exc.code).inc()
            raise close_for(exc) from None
        metrics.active_syntheses.inc()
        try:
            with admission.running():
                await session_obj.run(first)
        except VoxError as exc:
            raise close_for(exc) from None
        finally:
            metrics.active_syntheses.dec()
        await close_socket(ws, WS_NORMAL, "done")
    except WsClose as exc:
        log.info("%s closed code=%d reason=%s", name, exc.code, exc.reason)
        await close_socket(ws, exc.code, exc.reason, exc.message)
    except ClientGone:
        log.info("%s client went away", name)
    except Exception:
        log.exception("%s failed", name)
        await close_socket(
            ws, WS_INTERNAL, "internal_error", "internal error; the server log has the details"
        )
    finally:
        if admitted:
            admission.release()
        if session_obj is not None:
            await _finish_records(session_obj.streams())
        log.info("%s voice=%s session_s=%.2f", name, voice_id, time.perf_counter() - t_start)
