"""``POST /v1/audio/speech``: OpenAI-compatible speech, streamed as it is synthesised."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from voxvault.api.deps import SpeechCreator, SpeechStreamsDep, VoxVaultDep
from voxvault.api.schemas import SpeechRequest
from voxvault.api.streaming import ClosingStreamingResponse
from voxvault.synthesis.pipeline import FIRST_PIECE_PHONEMES

router = APIRouter(tags=["speech"])
log = logging.getLogger(__name__)


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


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}}, "description": "Audio bytes, streamed (chunked)."}},
)
def create_speech(
    body: SpeechRequest, vv: VoxVaultDep, streams: SpeechStreamsDep, principal: SpeechCreator
) -> StreamingResponse:
    t_start = time.perf_counter()
    style = vv.voice_for(principal, body.voice)
    prepared = vv.pipeline.prepare(
        body.input,
        style,
        fmt=body.response_format,
        speed=body.speed,
        sample_rate=body.sample_rate,
        lexicon=vv.lexicon_for(principal),
        first_piece_phonemes=FIRST_PIECE_PHONEMES,  # always streamed: a short first piece, audio sooner
    )
    chunks, ticket = streams.start(principal, prepared, t_start)
    headers = {"x-generation-id": ticket.id}
    # Closing (not Starlette's own) response: a client that hangs up (a caller barging in) stops the
    # synthesis before its next piece and frees its place at once, not whenever the generator is collected.
    if body.stream_format == "sse":
        return ClosingStreamingResponse(_sse(chunks), media_type="text/event-stream", headers=headers)
    return ClosingStreamingResponse(chunks, media_type=prepared.content_type, headers=headers)
