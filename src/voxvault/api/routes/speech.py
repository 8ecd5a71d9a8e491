"""``POST /v1/audio/speech``: OpenAI-compatible speech, streamed as it is synthesised."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from voxvault.api.schemas import SpeechRequest
from voxvault.synthesis import PreparedSpeech

router = APIRouter(tags=["speech"])
log = logging.getLogger(__name__)


def _metered(request: Request, prepared: PreparedSpeech, chunks: Iterator[bytes], stats: dict[str, float],
             t_start: float, cancel: threading.Event) -> Iterator[bytes]:
    """Wrap the byte stream: release the admission slot and record metrics however the stream ends."""
    state = request.app.state
    admission = state.admission
    try:
        with admission.running():
            state.metrics.active_syntheses.inc()
            try:
                first = True
                for data in chunks:
                    if first:
                        state.metrics.first_audio_seconds.labels(format=prepared.format).observe(
                            time.perf_counter() - t_start
                        )
                        first = False
                    yield data
            finally:
                state.metrics.active_syntheses.dec()
    finally:
        cancel.set()
        admission.release()
        total = time.perf_counter() - t_start
        audio_s = stats.get("audio_s", 0.0)
        if audio_s > 0:
            state.metrics.real_time_factor.observe(stats.get("total_s", total) / audio_s)
            state.metrics.audio_seconds.inc(audio_s)
        log.info(
            "speech voice=%s format=%s chars=%d pieces=%d audio_s=%.2f first_audio_s=%.3f total_s=%.3f",
            prepared.voice.voice_id, prepared.format, prepared.text_chars, len(prepared.pieces), audio_s,
            stats.get("first_audio_s", -1.0), total,
        )


def _sse(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """OpenAI's ``stream_format=sse``: ``speech.audio.delta`` events, then ``speech.audio.done``."""
    for data in chunks:
        event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")}
        yield f"data: {json.dumps(event)}\n\n".encode()
    yield b'data: {"type": "speech.audio.done"}\n\n'


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "Audio bytes, streamed (chunked)."}},
)
def create_speech(body: SpeechRequest, request: Request) -> StreamingResponse:
    t_start = time.perf_counter()
    vv = request.app.state.vv
    style = vv.catalog.resolve(body.voice)
    prepared = vv.pipeline.prepare(
        body.input, style, fmt=body.response_format, speed=body.speed, sample_rate=body.sample_rate
    )
    request.app.state.admission.reserve()
    cancel = threading.Event()
    stats: dict[str, float] = {}
    chunks = _metered(request, prepared, vv.pipeline.stream(prepared, cancel=cancel, stats=stats), stats,
                      t_start, cancel)
    if body.stream_format == "sse":
        return StreamingResponse(_sse(chunks), media_type="text/event-stream")
    return StreamingResponse(chunks, media_type=prepared.content_type)
