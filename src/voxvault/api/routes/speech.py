"""``POST /v1/audio/speech``: OpenAI-compatible speech, streamed as it is synthesised."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from voxvault.api.deps import require
from voxvault.api.schemas import SpeechRequest
from voxvault.api.streaming import ClosingStreamingResponse
from voxvault.governance.keys import Principal
from voxvault.synthesis import PreparedSpeech
from voxvault.synthesis.generation import Generation, GenerationStream, Render

router = APIRouter(tags=["speech"])
log = logging.getLogger(__name__)


def _metered(request: Request, stream: GenerationStream, t_start: float) -> Iterator[bytes]:
    """Wrap a generation's bytes for the response: the admission slot and the metrics (the generation
    service records and finishes the output itself)."""
    state = request.app.state
    admission = state.admission
    prepared = stream.generation.prepared
    try:
        with admission.running():
            state.metrics.active_syntheses.inc()
            try:
                first = True
                for data in stream:
                    if first:
                        state.metrics.first_audio_seconds.labels(format=prepared.format).observe(
                            time.perf_counter() - t_start
                        )
                        first = False
                    yield data
            finally:
                state.metrics.active_syntheses.dec()
    finally:
        stream.cancel.set()
        admission.release()
        stats = stream.stats
        total = time.perf_counter() - t_start
        audio_s = stats.get("audio_s", 0.0)
        if audio_s > 0:
            state.metrics.real_time_factor.observe(stats.get("total_s", total) / audio_s)
            state.metrics.audio_seconds.inc(audio_s)
        stream.close()  # finishes the record: completed when it ran out, else cancelled
        log.info(
            "speech generation=%s voice=%s format=%s chars=%d pieces=%d audio_s=%.2f first_audio_s=%.3f "
            "total_s=%.3f",
            stream.generation.id,
            prepared.voice.voice_id,
            prepared.format,
            prepared.text_chars,
            len(prepared.pieces),
            audio_s,
            stats.get("first_audio_s", -1.0),
            total,
        )


def _sse(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """OpenAI's ``stream_format=sse``: ``speech.audio.delta`` events, then ``speech.audio.done``.

    Closing it closes ``chunks`` at once (a client that hung up frees its place now, not when collected).
    """
    try:
        for data in chunks:
            event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")}
            yield f"data: {json.dumps(event)}\n\n".encode()
        yield b'data: {"type": "speech.audio.done"}\n\n'
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def start_speech_stream(
    request: Request,
    principal: Principal,
    prepared: PreparedSpeech,
    t_start: float,
    render: Render | None = None,
) -> tuple[Iterator[bytes], Generation]:
    """Admit, then open the output through the generation service and return its metered byte stream
    (shared by all speech routes).

    ``render`` (default: the pipeline's stream) is called before any response starts, so whatever it
    sets up (its encoder) fails as a 4xx rather than after the headers.
    """
    vv = request.app.state.vv
    request.app.state.admission.reserve()
    try:
        stream = vv.generation.stream(prepared, principal.key_id, render=render, started=t_start)
    except BaseException:
        request.app.state.admission.release()
        raise
    return _metered(request, stream, t_start), stream.generation


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "Audio bytes, streamed (chunked)."}},
)
def create_speech(
    body: SpeechRequest, request: Request, principal: Annotated[Principal, Depends(require("speech:create"))]
) -> StreamingResponse:
    t_start = time.perf_counter()
    vv = request.app.state.vv
    style = vv.voice_for(principal, body.voice)
    prepared = vv.pipeline.prepare(
        body.input,
        style,
        fmt=body.response_format,
        speed=body.speed,
        sample_rate=body.sample_rate,
        lexicon=vv.lexicon_for(principal),
    )
    chunks, ticket = start_speech_stream(request, principal, prepared, t_start)
    headers = {"x-generation-id": ticket.id}
    # Closing (not Starlette's own) response: a client that hangs up (a caller barging in) stops the
    # synthesis before its next piece and frees its place at once, not whenever the generator is collected.
    if body.stream_format == "sse":
        return ClosingStreamingResponse(_sse(chunks), media_type="text/event-stream", headers=headers)
    return ClosingStreamingResponse(chunks, media_type=prepared.content_type, headers=headers)
