"""GenerationService: one record per output, finished exactly once however the output ends; and no
other module reaches the generation log or the watermark hook (so no path can skip them).

The renderer here is a fake (a tone through the real watermark hook); the database and audit trail are
the session's real ones.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from voxvault.engines.watermark import Watermarker
from voxvault.store.models import Generation
from voxvault.synthesis.generation import GenerationService
from voxvault.synthesis.pipeline import ChunkHook, PreparedSpeech, VoiceStyle

REPO = Path(__file__).resolve().parents[2]
RATE = 24_000


class Boom(RuntimeError):
    pass


@pytest.fixture
def service(vv: Any) -> GenerationService:
    """The real log and audit trail; a pipeline that only has a sample rate (the renders are fakes)."""
    fake = SimpleNamespace(tts=SimpleNamespace(sample_rate=RATE))
    return GenerationService(
        lambda: vv.db, lambda: vv.audit, pipeline=lambda: fake, watermarker=lambda: Watermarker(b"k")
    )


def _prepared() -> PreparedSpeech:
    return PreparedSpeech([], VoiceStyle("alpha", np.zeros(0, np.float32)), "pcm", 1.0, RATE, "ab" * 32, 12)


def _tone(chunks: int, fail_at: int | None = None):  # type: ignore[no-untyped-def]
    """A render: ``chunks`` half-second tones through the hook; raises Boom before chunk ``fail_at``."""

    def render(hook: ChunkHook, cancel: threading.Event, stats: dict[str, float]) -> Iterator[bytes]:
        t = np.arange(RATE // 2) / RATE
        for i in range(chunks):
            if cancel.is_set():
                return
            if i == fail_at:
                raise Boom
            marked = hook((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), i * len(t))
            yield (marked * 32767).astype("<i2").tobytes()
        stats["audio_s"] = chunks * 0.5

    return render


def _outcome(vv: Any, seq: int, generation_id: str) -> tuple[list[str], Generation]:
    actions = [
        e["action"]
        for e in vv.audit.entries(since_seq=seq)
        if e["action"].startswith("speech.") and e["details"]["generation_id"] == generation_id
    ]
    with vv.db.session() as s:
        row = s.scalars(select(Generation).where(Generation.id == generation_id)).one()
        s.expunge(row)
    return actions, row


def test_a_stream_read_to_the_end_is_recorded_once_with_its_bytes(
    vv: Any, service: GenerationService
) -> None:
    seq = vv.audit.head()[0]
    stream = service.stream(_prepared(), "key-1", render=_tone(3))
    data = b"".join(stream)
    stream.close()  # a response closes what it streamed: nothing more is written
    actions, row = _outcome(vv, seq, stream.generation.id)
    assert actions == ["speech.created"]
    assert row.output_sha256 == hashlib.sha256(data).hexdigest()
    assert row.duration_s == pytest.approx(1.5)
    assert row.key_id == "key-1"


def test_a_client_that_hangs_up_cancels_the_render_and_the_record_once(
    vv: Any, service: GenerationService
) -> None:
    seq = vv.audit.head()[0]
    with service.stream(_prepared(), None, render=_tone(10)) as stream:
        first = next(stream)
    assert stream.cancel.is_set()
    stream.close()
    actions, row = _outcome(vv, seq, stream.generation.id)
    assert actions == ["speech.cancelled"]
    assert row.output_sha256 == hashlib.sha256(first).hexdigest()  # what left, not what was planned


def test_a_render_that_fails_midway_is_recorded_as_cancelled(vv: Any, service: GenerationService) -> None:
    seq = vv.audit.head()[0]
    stream = service.stream(_prepared(), None, render=_tone(3, fail_at=1))
    with pytest.raises(Boom):
        list(stream)
    stream.close()
    assert _outcome(vv, seq, stream.generation.id)[0] == ["speech.cancelled"]


def test_a_render_that_cannot_start_leaves_a_cancelled_record(vv: Any, service: GenerationService) -> None:
    seq = vv.audit.head()[0]

    def refuses(hook: ChunkHook, cancel: threading.Event, stats: dict[str, float]) -> Iterator[bytes]:
        raise Boom  # an encoder that refuses its settings, before any byte

    with pytest.raises(Boom):
        service.stream(_prepared(), None, render=refuses)
    created = [e for e in vv.audit.entries(since_seq=seq) if e["action"].startswith("speech.")]
    assert [e["action"] for e in created] == ["speech.cancelled"]
    assert created[0]["details"]["output_sha256"] == ""


def test_the_stream_carries_the_records_watermark(vv: Any, service: GenerationService) -> None:
    stream = service.stream(_prepared(), None, render=_tone(8))
    pcm = np.frombuffer(b"".join(stream), "<i2").astype(np.float32) / 32767
    found = Watermarker(b"k").detect(pcm, RATE)
    assert found.payload == stream.generation.watermark_id


# ------------------------------------------------------------------------------------- the static check
OWNER = "src/voxvault/synthesis/generation.py"
LOG = "src/voxvault/synthesis/records.py"
WATERMARK_PACKAGE = "src/voxvault/engines/watermark/"


def _offences(path: Path) -> list[str]:
    """Uses of the record log or the mark outside the generation service, in one module."""
    rel = path.relative_to(REPO).as_posix()
    if rel in (OWNER, LOG):
        return []
    bad = {"GenerationLog", "GenerationTicket", "generations", "watermark_hook"}
    if not rel.startswith(WATERMARK_PACKAGE) and rel != "bench/watermark.py":  # the mark's own bench
        bad |= {"embedder", "StreamEmbedder"}  # a hook made by hand
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.alias):
            name = node.name.rsplit(".", 1)[-1]
        if name in bad:
            found.append(f"{rel}:{getattr(node, 'lineno', '?')}: {name}")
        if not rel.startswith("src/"):
            continue  # benches time bare renders; they only must not open records or mark by hand
        # Product code renders only through the service: no pipeline render or stream of its own, and
        # no hook set on a session (SessionGeneration gives a WebSocket session its mark).
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            owner = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if owner == "pipeline" and node.func.attr in {"render", "stream"}:
                found.append(f"{rel}:{node.lineno}: pipeline.{node.func.attr}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "hook"
            and isinstance(node.ctx, ast.Store)
            and getattr(node.value, "id", "") != "self"  # a session keeping the hook it was given
        ):
            found.append(f"{rel}:{node.lineno}: .hook =")
    return found


def test_only_the_generation_service_opens_records_and_attaches_the_mark() -> None:
    modules = sorted((REPO / "src" / "voxvault").rglob("*.py")) + sorted((REPO / "bench").rglob("*.py"))
    assert len(modules) > 50
    offences = [o for m in modules for o in _offences(m)]
    assert offences == []
    # ...and the check does see them where they are.
    owner = ast.dump(ast.parse((REPO / OWNER).read_text(encoding="utf-8")))
    for name in ("GenerationLog", "embedder", "begin", "finish", "hook"):
        assert f"'{name}'" in owner, name


def test_a_batch_worker_marks_its_item_and_writes_no_record(settings: Any, tmp_path: Path) -> None:
    """A Ray actor renders with the id the driver's record handed out; only the driver writes records."""
    from voxvault.audio import decode
    from voxvault.jobs.sinks import open_sink
    from voxvault.jobs.spec import BatchItem
    from voxvault.jobs.worker import BatchWorker, WorkerOptions
    from voxvault.service import VoxVault

    worker_vv = VoxVault(settings.model_copy(update={"data_dir": tmp_path / "actor"}))
    worker = BatchWorker(worker_vv, open_sink(str(tmp_path / "out")), WorkerOptions(default_voice="alpha"))
    text = "A batch item long enough to carry the whole watermark frame, and a little more speech after it."
    assert worker.prepare(BatchItem("one", text)).failure is None
    done = worker.render("one", 4242)
    assert done.failure is None, done.failure
    with worker_vv.db.session() as s:  # the actor's own database (it reads voices there) got no record
        assert s.scalar(select(func.count()).select_from(Generation)) == 0
    audio = decode((tmp_path / "out" / done.key).read_bytes(), max_bytes=10**8, max_seconds=600)
    assert worker_vv.watermarker.detect(audio.samples, audio.sample_rate).payload == 4242
