"""Speech to text: OpenAI ``/v1/audio/transcriptions`` and ``/v1/audio/translations``, ElevenLabs
``/v1/speech-to-text``. All need the ``speech:transcribe`` scope.

The upload is bounded like every other (``max_upload_bytes``, counted as it arrives), every cheap check
runs before a byte is decoded, and the audio is decoded and recognised in windows (engines/whisper.py), so
a long file never sits in memory as float32. Whisper loads on the first transcription, never before.
Bad input is refused before any response starts: non-audio 415, empty or broken 422, silent 422
``silent_audio``, too long 413, too many channels 422. At most ``max_concurrent_transcriptions`` run at
once, ``queue_size`` more wait; beyond that 429 ``server_busy``.

Nothing is stored: the transcript goes back in the response. The audit entry and the log line carry ids,
sizes, durations and timings, never text or audio.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from voxvault.api.deps import Transcriber, TranscriptionGateDep, VoxVaultDep
from voxvault.api.forms import read_bounded_form
from voxvault.api.schemas import BINARY, multipart_body
from voxvault.api.transcription_gate import TranscriptionGate
from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault

router = APIRouter(tags=["transcription"])
log = logging.getLogger(__name__)

#: OpenAI model names to local Whisper models (``None``: the configured ``asr_model``).
OPENAI_MODELS: dict[str, str | None] = {
    "whisper-1": None,
    "gpt-4o-transcribe": "base",
    "gpt-4o-mini-transcribe": "tiny.en",
    "base": "base",
    "tiny.en": "tiny.en",
}
#: ElevenLabs model ids (all the configured model).
ELEVENLABS_MODELS = ("scribe_v1", "scribe_v1_experimental", "scribe_v2")
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
MAX_PROMPT_CHARS = 2_000
_MULTIPART_OPENAPI = multipart_body(
    ["file"],
    {
        "file": BINARY,
        "model": {"type": "string"},
        "language": {"type": "string"},
        "prompt": {"type": "string"},
        "temperature": {"type": "number"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
    },
)


# ------------------------------------------------------------------------------------------- form fields
def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise VoxError("invalid_request", f"'{name}' must be a text field", 400, field=name)
    return value.strip()


def _bool(form: FormData, name: str, default: bool = False) -> bool:
    value = _field(form, name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise VoxError("invalid_request", f"'{name}' must be true or false", 400, field=name)


def _temperature(form: FormData) -> float:
    value = _field(form, "temperature")
    if not value:
        return 0.0
    try:
        t = float(value)
    except ValueError:
        raise VoxError("invalid_temperature", "temperature must be a number between 0 and 1", 400) from None
    if not 0.0 <= t <= 1.0:  # also refuses nan
        raise VoxError("invalid_temperature", "temperature must be a number between 0 and 1", 400)
    return t


async def _read_file(form: FormData) -> tuple[bytes, str]:
    upload = form.get("file")
    if upload is None:
        raise VoxError("missing_file", "send the audio as the multipart field 'file'", 422)
    if not isinstance(upload, UploadFile):
        raise VoxError("missing_file", "'file' must be a file part, not a text field", 422)
    data = await upload.read()
    if not data:
        raise VoxError("invalid_audio", "The upload is empty.", 422)
    return data, upload.filename or "audio"


# ------------------------------------------------------------------------------------------- running
@dataclass
class _Job:
    """One transcription request: what the audit entry and the log line say about it (never content)."""

    id: str
    route: str
    model: str
    task: str
    response_format: str
    upload_bytes: int
    actor: str
    started: float
    language: str = ""
    duration_s: float = 0.0
    segments: int = 0
    words: int = 0
    windows: int = 0


def _record(vv: VoxVault, job: _Job, completed: bool, error: str | None = None) -> None:
    took = time.perf_counter() - job.started
    details: dict[str, Any] = {
        "route": job.route,
        "model": job.model,
        "task": job.task,
        "response_format": job.response_format,
        "upload_bytes": job.upload_bytes,
        "language": job.language,
        "audio_s": round(job.duration_s, 3),
        "segments": job.segments,
        "words": job.words,
        "latency_ms": round(took * 1000),
        "completed": completed,
    }
    if error:
        details["error"] = error
    vv.audit.record("transcription.created", actor=job.actor, target=job.id, details=details)
    log.info(
        "transcription id=%s route=%s model=%s task=%s bytes=%d audio_s=%.2f windows=%d segments=%d "
        "total_s=%.3f rtf=%.3f completed=%s",
        job.id,
        job.route,
        job.model,
        job.task,
        job.upload_bytes,
        job.duration_s,
        job.windows,
        job.segments,
        took,
        took / job.duration_s if job.duration_s else 0.0,
        completed,
    )


def _start(vv: VoxVault, data: bytes, model: str, options: Any, keep: list[np.ndarray] | None = None) -> Any:
    """Decode the upload's first block (a file that is not audio, or short and silent, is refused before
    Whisper is loaded), then load the model (first use) and start recognising (worker thread). With
    ``keep``, every decoded block (16 kHz mono) is also appended there, for the diarizer: the upload is
    decoded once."""
    from voxvault.engines.whisper import upload_blocks

    blocks: Iterator[np.ndarray] = upload_blocks(
        data, max_bytes=vv.settings.max_upload_bytes, max_seconds=vv.settings.asr_max_seconds
    )
    if keep is not None:
        blocks = _kept(blocks, keep)
    engine = vv.engines.transcriber(model)
    return engine.recognize_blocks(blocks, options)


def _kept(blocks: Iterator[np.ndarray], keep: list[np.ndarray]) -> Iterator[np.ndarray]:
    for block in blocks:
        keep.append(block)
        yield block


async def _transcribe(
    vv: VoxVault,
    gate: TranscriptionGate,
    job: _Job,
    data: bytes,
    options: Any,
    keep: list[np.ndarray] | None = None,
) -> Any:
    """Admit, start; returns the lazy transcription with its gate slot held (caller releases)."""
    gate.admit()
    started = False
    try:
        await run_in_threadpool(gate.run)
        started = True
        transcription = await run_in_threadpool(_start, vv, data, job.model, options, keep)
    except VoxError as exc:
        gate.done(started)
        _record(vv, job, False, exc.code)
        raise
    except BaseException:
        gate.done(started)
        raise
    job.language = transcription.info.language
    return transcription


def _finish(job: _Job, transcription: Any) -> Any:
    from voxvault.transcripts import collect

    transcript = collect(transcription)
    job.duration_s = transcript.duration
    job.segments = len(transcript.segments)
    job.words = len(transcript.words)
    job.windows = transcription.windows
    return transcript


async def _complete(
    vv: VoxVault,
    job: _Job,
    transcription: Any,
    gate: TranscriptionGate,
    then: Callable[[], object] | None = None,
) -> Any:
    """Recognise everything (worker thread), run ``then`` (diarization) still holding the slot, release it,
    audit: the audit entry says completed only once all the request's work is done."""
    try:
        transcript = await run_in_threadpool(_finish, job, transcription)
        if then is not None:
            await run_in_threadpool(then)
    except VoxError as exc:  # a later window was refused (too long, broken past its start)
        _record(vv, job, False, exc.code)
        raise
    finally:
        gate.done(True)
    _record(vv, job, True)
    return transcript


def _new_job(principal: Principal, route: str, model: str, task: str, fmt: str, size: int) -> _Job:
    return _Job(
        id=uuid.uuid4().hex,
        route=route,
        model=model,
        task=task,
        response_format=fmt,
        upload_bytes=size,
        actor=principal.key_id,
        started=time.perf_counter(),
    )


# ------------------------------------------------------------------------------------------- OpenAI
def _openai_model(settings: Settings, name: str | None, task: str) -> str:
    name = name or "whisper-1"
    if name not in OPENAI_MODELS:
        known = ", ".join(OPENAI_MODELS)
        raise VoxError("unsupported_model", f"model {name[:60]!r} is not available; use one of {known}", 400)
    model = OPENAI_MODELS[name] or settings.asr_model
    if task == "translate":
        return "base"  # translation needs the multilingual model, whatever the name
    return model


def _granularities(form: FormData) -> set[str]:
    values = [
        v for key in ("timestamp_granularities[]", "timestamp_granularities") for v in form.getlist(key)
    ]
    found: set[str] = set()
    for v in values:
        if not isinstance(v, str) or v.strip() not in ("word", "segment"):
            raise VoxError(
                "invalid_request", "timestamp_granularities may only hold 'word' and 'segment'", 400
            )
        found.add(v.strip())
    return found


async def _openai(
    request: Request, vv: VoxVault, gate: TranscriptionGate, principal: Principal, task: str
) -> Response:
    from voxvault.engines.whisper import TranscribeOptions

    form = await read_bounded_form(request, vv.settings.max_upload_bytes, 1)
    fmt = (_field(form, "response_format") or "json").lower()
    if fmt not in RESPONSE_FORMATS:
        raise VoxError(
            "unsupported_format",
            f"response_format {fmt[:30]!r} is not supported; use one of {', '.join(RESPONSE_FORMATS)}",
            400,
            supported=list(RESPONSE_FORMATS),
        )
    model = _openai_model(vv.settings, _field(form, "model"), task)
    stream = _bool(form, "stream")
    granularities = _granularities(form) or {"segment"}
    prompt = _field(form, "prompt") or None
    if prompt and len(prompt) > MAX_PROMPT_CHARS:
        raise VoxError("prompt_too_long", f"prompt is longer than {MAX_PROMPT_CHARS} characters", 400)
    options = TranscribeOptions(
        language=(_field(form, "language") or None) if task == "transcribe" else None,
        task="translate" if task == "translate" else "transcribe",
        prompt=prompt,
        temperature=_temperature(form),
        word_timestamps="word" in granularities and fmt == "verbose_json",
    )
    data, _ = await _read_file(form)
    route = "openai.translations" if task == "translate" else "openai.transcriptions"
    job = _new_job(principal, route, model, task, "sse" if stream else fmt, len(data))
    transcription = await _transcribe(vv, gate, job, data, options)
    headers = {"x-transcription-id": job.id}
    if stream:
        return StreamingResponse(
            _sse(vv, job, transcription, gate), media_type="text/event-stream", headers=headers
        )
    transcript = await _complete(vv, job, transcription, gate)
    from voxvault.transcripts import json_body, to_srt, to_vtt, verbose_json

    if fmt == "json":
        return JSONResponse(json_body(transcript), headers=headers)
    if fmt == "verbose_json":
        body = verbose_json(transcript, words="word" in granularities, segments="segment" in granularities)
        return JSONResponse(body, headers=headers)
    if fmt == "srt":
        return PlainTextResponse(to_srt(transcript.segments), headers=headers)
    if fmt == "vtt":
        return PlainTextResponse(to_vtt(transcript.segments), media_type="text/vtt", headers=headers)
    return PlainTextResponse(transcript.text, headers=headers)


def _sse(vv: VoxVault, job: _Job, transcription: Any, gate: TranscriptionGate) -> Iterator[bytes]:
    """OpenAI's streamed transcription: ``transcript.text.delta`` per segment, ``transcript.text.done``.

    A refusal after the stream started (a later part of the file is broken or past the length limit)
    arrives as an ``error`` event, which the OpenAI SDK raises.
    """
    parts: list[str] = []
    completed = False
    error: str | None = None
    try:
        for segment in transcription:
            job.segments += 1
            job.words += len(segment.words)
            delta = segment.text.strip()
            if not delta:
                continue
            delta = delta if not parts else " " + delta
            parts.append(delta)
            yield _event({"type": "transcript.text.delta", "delta": delta})
        job.duration_s = transcription.duration
        text = "".join(parts)
        usage = {"type": "duration", "seconds": math.ceil(job.duration_s)}
        yield _event({"type": "transcript.text.done", "text": text, "usage": usage})
        completed = True
    except VoxError as exc:
        error = exc.code
        yield _event({"type": "error", "error": {"code": exc.code, "message": exc.message}})
    finally:
        job.windows = transcription.windows
        job.duration_s = job.duration_s or transcription.duration
        gate.done(True)
        _record(vv, job, completed, error)


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


@router.post("/v1/audio/transcriptions", openapi_extra=_MULTIPART_OPENAPI)
async def create_transcription(
    request: Request, vv: VoxVaultDep, gate: TranscriptionGateDep, principal: Transcriber
) -> Response:
    """OpenAI-compatible transcription: ``file``, ``model`` (whisper-1, gpt-4o-transcribe,
    gpt-4o-mini-transcribe), ``language``, ``prompt``, ``temperature``, ``response_format`` (json, text,
    srt, vtt, verbose_json), ``timestamp_granularities[]`` (word, segment), ``stream`` (SSE)."""
    return await _openai(request, vv, gate, principal, "transcribe")


@router.post("/v1/audio/translations", openapi_extra=_MULTIPART_OPENAPI)
async def create_translation(
    request: Request, vv: VoxVaultDep, gate: TranscriptionGateDep, principal: Transcriber
) -> Response:
    """OpenAI-compatible translation of speech in any language Whisper knows into English text."""
    return await _openai(request, vv, gate, principal, "translate")


# ------------------------------------------------------------------------------------------- ElevenLabs
def _eleven_language(code: str | None) -> str | None:
    from voxvault.transcripts import ISO3_TO_1

    if not code:
        return None
    code = code.strip().lower()
    return ISO3_TO_1.get(code, code)


def _eleven_words(transcript: Any, granularity: str) -> list[dict[str, Any]]:
    """ElevenLabs' ``words``: each word and the spacing between words, with times and a log probability."""
    out: list[dict[str, Any]] = []
    timed = granularity != "none"
    previous_end: float | None = None
    for word in transcript.words:
        text = word.word.strip()
        if not text:
            continue
        if previous_end is not None:
            out.append(
                {
                    "text": " ",
                    "start": previous_end if timed else None,
                    "end": word.start if timed else None,
                    "type": "spacing",
                    "speaker_id": None,
                    "logprob": 0.0,
                }
            )
        item: dict[str, Any] = {
            "text": text,
            "start": word.start if timed else None,
            "end": word.end if timed else None,
            "type": "word",
            "speaker_id": None,
            "logprob": round(math.log(max(word.probability, 1e-6)), 4),
        }
        if granularity == "character":
            step = (word.end - word.start) / len(text)
            item["characters"] = [
                {
                    "text": ch,
                    "start": round(word.start + i * step, 3),
                    "end": round(word.start + (i + 1) * step, 3),
                }
                for i, ch in enumerate(text)
            ]
        out.append(item)
        previous_end = word.end
    return out


def _diarize(vv: VoxVault, blocks: list[np.ndarray], num_speakers: int | None) -> list[Any]:
    """Speaker turns of the upload, from the blocks the transcription decoded (16 kHz, as the diarizer
    wants them): the upload is not decoded a second time."""
    from voxvault.engines.whisper import SAMPLE_RATE

    audio = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    blocks.clear()
    turns: list[Any] = vv.engines.diarizer().diarize(audio, SAMPLE_RATE, num_speakers)
    return turns


def _label_speakers(words: list[dict[str, Any]], transcript: Any, turns: list[Any]) -> None:
    """Each word's ``speaker_id``: the turn covering its midpoint (spacing between words of one speaker
    gets that speaker). Uses the transcript's times even when ``timestamps_granularity`` is none."""
    from voxvault.engines.diarize import speaker_at

    timed = iter(w for w in transcript.words if w.word.strip())
    for item in words:
        if item["type"] == "word":
            word = next(timed)
            item["speaker_id"] = speaker_at(turns, (word.start + word.end) / 2)
    for i, item in enumerate(words):
        if item["type"] == "spacing" and 0 < i < len(words) - 1:
            before, after = words[i - 1]["speaker_id"], words[i + 1]["speaker_id"]
            item["speaker_id"] = before if before == after else None


@router.post(
    "/v1/speech-to-text",
    openapi_extra=multipart_body(
        ["model_id", "file"],
        {
            "model_id": {"type": "string", "enum": list(ELEVENLABS_MODELS)},
            "file": BINARY,
            "language_code": {"type": "string"},
            "diarize": {"type": "boolean"},
            "num_speakers": {"type": "integer"},
            "timestamps_granularity": {"type": "string", "enum": ["none", "word", "character"]},
        },
    ),
)
async def speech_to_text(
    request: Request, vv: VoxVaultDep, gate: TranscriptionGateDep, principal: Transcriber
) -> Response:
    """ElevenLabs-compatible speech to text: ``model_id``, ``file``, ``language_code`` (ISO 639-1 or -3),
    ``diarize``, ``num_speakers``, ``timestamps_granularity`` (none, word, character)."""
    from voxvault.engines.whisper import TranscribeOptions
    from voxvault.transcripts import ISO1_TO_3

    form = await read_bounded_form(request, vv.settings.max_upload_bytes, 1)
    model_id = _field(form, "model_id")
    if not model_id:
        raise VoxError(
            "missing_field", "the form needs a 'model_id' field (scribe_v1)", 422, field="model_id"
        )
    if model_id not in ELEVENLABS_MODELS:
        known = ", ".join(ELEVENLABS_MODELS)
        raise VoxError("unsupported_model", f"model_id {model_id[:60]!r} is not available; use {known}", 400)
    if _field(form, "cloud_storage_url") or _field(form, "source_url"):
        raise VoxError("unsupported_source", "send the audio as 'file'; URLs are never fetched", 400)
    granularity = (_field(form, "timestamps_granularity") or "word").lower()
    if granularity not in ("none", "word", "character"):
        raise VoxError("invalid_request", "timestamps_granularity must be none, word or character", 400)
    num_speakers: int | None = None
    num_speakers_s = _field(form, "num_speakers")
    if num_speakers_s:
        try:
            num_speakers = int(num_speakers_s)
        except ValueError:
            num_speakers = 0
        if not 1 <= num_speakers <= 32:
            raise VoxError("invalid_num_speakers", "num_speakers must be an integer from 1 to 32", 400)
    diarize = _bool(form, "diarize")
    options = TranscribeOptions(
        language=_eleven_language(_field(form, "language_code")),
        temperature=_temperature(form),
        word_timestamps=True,  # the words are listed even without times
    )
    model = vv.settings.asr_model
    data, _ = await _read_file(form)
    job = _new_job(principal, "elevenlabs.speech_to_text", model, "transcribe", granularity, len(data))
    decoded: list[np.ndarray] | None = [] if diarize else None
    transcription = await _transcribe(vv, gate, job, data, options, keep=decoded)
    turns: list[Any] = []
    transcript = await _complete(
        vv,
        job,
        transcription,
        gate,
        then=(lambda: turns.extend(_diarize(vv, decoded or [], num_speakers))) if diarize else None,
    )
    language = transcript.info.language
    words = _eleven_words(transcript, granularity)
    if diarize:
        _label_speakers(words, transcript, turns)
    body = {
        "language_code": ISO1_TO_3.get(language, language),
        "language_probability": round(transcript.info.language_probability, 4),
        "text": transcript.text,
        "words": words,
        "transcription_id": job.id,
        "audio_duration_secs": round(transcript.duration, 3),
    }
    return JSONResponse(body, headers={"x-transcription-id": job.id})
