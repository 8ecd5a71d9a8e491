"""Streaming transcription latency (part of ``make bench-asr``): how soon the first words come back.

    python bench/asr_stream.py --out bench/results/asr_stream.json --doc docs/benchmarks.md

A real ``voxvault serve`` (uvicorn, in this process) and a real WebSocket client: each LibriVox clip of
``pocketsphinx-testdata`` is sent as 100 ms PCM frames at real-time pace; measured from the moment the
first frame with speech in it (peak above -30 dBFS) was sent to the first ``partial`` message, and to the
``done`` message after ``end``. WER of the finals against the clip's transcript. The machine is shared:
the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
FRAME_S = 0.1
SPEECH_PEAK = 10 ** (-30 / 20)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(data_dir: Path) -> tuple[str, str, Any]:
    import uvicorn

    from voxvault.api.app import create_app
    from voxvault.config import Settings
    from voxvault.service import VoxVault

    vv = VoxVault(Settings(data_dir=data_dir, cache_dir=Settings().prepare().resolved_cache_dir))
    org, project = vv.keys.ensure_default_project()
    key = str(vv.keys.create(org_id=org, project_id=project, scopes=["speech:transcribe"]).secret)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(vv=vv, warm_up=False), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"ws://127.0.0.1:{port}", key, (vv, server)


def one_stream(base: str, key: str, model: str, path: Path) -> dict[str, Any]:
    from websockets.sync.client import connect

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    frame = int(rate * FRAME_S) * 2
    marks: dict[str, float] = {}
    messages: list[dict[str, Any]] = []
    url = f"{base}/v1/speech-to-text/stream?model={model}&sample_rate={rate}"
    with connect(url, additional_headers={"Authorization": f"Bearer {key}"}, max_size=None) as ws:
        assert json.loads(ws.recv())["type"] == "ready"

        def reader() -> None:
            for raw in ws:
                message = json.loads(raw)
                messages.append(message)
                now = time.perf_counter()
                if message["type"] == "partial":
                    marks.setdefault("first_partial", now)
                if message["type"] == "final":
                    marks.setdefault("first_final", now)
                if message["type"] == "done":
                    marks["done"] = now

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), frame)):
            chunk = pcm[i : i + frame]
            if "speech" not in marks and np.abs(np.frombuffer(chunk, "<i2")).max() / 32768 > SPEECH_PEAK:
                marks["speech"] = time.perf_counter()
            ws.send(chunk)
            time.sleep(max(0.0, t0 + (k + 1) * FRAME_S - time.perf_counter()))  # real time
        marks["end"] = time.perf_counter()
        ws.send(json.dumps({"type": "end"}))
        thread.join(timeout=120)
    text = " ".join(m["text"] for m in messages if m["type"] == "final")
    speech = marks.get("speech", t0)
    return {
        "clip": path.name,
        "audio_s": round(len(pcm) / 2 / rate, 2),
        "first_partial_ms": round((marks["first_partial"] - speech) * 1000)
        if "first_partial" in marks
        else None,
        "first_final_ms": round((marks["first_final"] - speech) * 1000) if "first_final" in marks else None,
        "done_after_end_ms": round((marks["done"] - marks["end"]) * 1000) if "done" in marks else None,
        "partials": sum(m["type"] == "partial" for m in messages),
        "text": text,
    }


def main() -> None:
    import asr as bench_asr

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/asr_stream.json")
    ap.add_argument("--doc", default=None)
    args = ap.parse_args()
    if not (bench_asr.LIBRIVOX / "transcription").is_file():
        sys.exit("pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata); skipping")
    items = bench_asr.clips()
    result: dict[str, Any] = {
        "machine": {
            "cpu": bench_asr.cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1min_before": round(os.getloadavg()[0], 2),
        },
        "frame_s": FRAME_S,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        base, key, (vv, server) = serve(Path(tmp))
        for model in ("tiny.en", "base"):
            vv.engines.transcriber(model)  # loaded before the clock starts, as on a warm server
            rows = [one_stream(base, key, model, path) for path, _ in items]
            refs = [ref for _, ref in items]
            partials = [r["first_partial_ms"] for r in rows if r["first_partial_ms"] is not None]
            result["runs"].append(
                {
                    "model": model,
                    "wer": round(bench_asr.wer(refs, [r["text"] for r in rows]), 4),
                    "first_partial_ms_median": float(np.median(partials)) if partials else None,
                    "first_partial_ms_max": max(partials) if partials else None,
                    "done_after_end_ms_median": float(np.median([r["done_after_end_ms"] for r in rows])),
                    "clips": rows,
                }
            )
            print(json.dumps(result["runs"][-1], indent=1)[:600], flush=True)
        server.should_exit = True  # before the data dir goes
        time.sleep(1.0)
    result["machine"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if args.doc:
        write_doc(Path(args.doc), result)


BEGIN, END = "<!-- bench-asr-stream:begin -->", "<!-- bench-asr-stream:end -->"


def write_doc(path: Path, r: dict[str, Any]) -> None:
    from doc_block import replace_block

    m = r["machine"]
    lines = [
        BEGIN,
        f"Streaming (`WS /v1/speech-to-text/stream`), the five LibriVox clips sent as {r['frame_s']:g} s "
        f"PCM frames at real-time pace to a warm server on the same machine ({m['cores']} cores, {m['cpu']}; "
        f"load average {m['load_average_1min_before']:.1f} before, {m['load_average_1min_after']:.1f} after, "
        "other engineers' work included). First partial: from the first frame with speech to the first "
        "`partial` message; done: from `end` to the `done` message.",
        "",
        "| model | WER of the finals | first partial, median (ms) | first partial, worst (ms) "
        "| done after end, median (ms) |",
        "|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        lines.append(
            f"| {run['model']} | {run['wer']:.3f} | {run['first_partial_ms_median']:.0f} "
            f"| {run['first_partial_ms_max']:.0f} | {run['done_after_end_ms_median']:.0f} |"
        )
    lines.append(END)
    replace_block(path, "\n".join(lines), BEGIN, END, heading="### Streaming transcription")


if __name__ == "__main__":
    main()
