"""Streaming transcription latency (part of ``make bench-asr``): how soon the first words come back.

    python bench/asr_stream.py --out bench/results/asr_stream.json --doc docs/benchmarks.md

A real ``voxvault serve`` (uvicorn, in this process) and a real WebSocket client: each LibriVox clip of
``pocketsphinx-testdata`` is sent as 100 ms PCM frames at real-time pace; measured from the moment the
first frame with speech in it (peak above -30 dBFS) was sent to the first ``partial`` message, and to the
``done`` message after ``end``. WER of the finals against the clip's transcript. The machine is shared:
the load average is recorded.

The first partial's latency is split in two: the audio it waited for (its ``end`` minus the audio sent
when speech started; set by when the server decides to look) and the rest (the model's step, queueing
behind a step already running, and the socket).

``--also-src LABEL=DIR`` serves another source tree (``DIR/src``, e.g. ``git archive <commit> src``) from
a child process at the same time; every clip goes to each server in turn, so a before/after comparison
shares the machine's load.

    python bench/asr_stream.py --also-src before=/tmp/before --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
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


def serve_child() -> None:
    """``--serve``: a warm server (both models loaded) for a parent bench; its URL and key on stdout, until
    stdin closes."""
    with tempfile.TemporaryDirectory() as tmp:
        base, key, (vv, server) = serve(Path(tmp))
        for model in MODELS:
            vv.engines.transcriber(model)
        import voxvault

        print(json.dumps({"base": base, "key": key, "src": str(Path(voxvault.__file__).parent)}), flush=True)
        sys.stdin.read()
        server.should_exit = True
        time.sleep(1.0)


class ChildServer:
    def __init__(self, label: str, src: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(src / "src")}
        self.label = label
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {label} server did not start")
        info = json.loads(line)
        self.base, self.key, self.src = info["base"], info["key"], info["src"]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


MODELS = ("tiny.en", "base")


def one_stream(base: str, key: str, model: str, path: Path) -> dict[str, Any]:
    from websockets.sync.client import connect

    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    frame = int(rate * FRAME_S) * 2
    marks: dict[str, float] = {}
    sent_at_speech = 0.0  # seconds of audio sent once the frame with speech was
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
                sent_at_speech = (i + len(chunk)) / 2 / rate
            ws.send(chunk)
            time.sleep(max(0.0, t0 + (k + 1) * FRAME_S - time.perf_counter()))  # real time
        marks["end"] = time.perf_counter()
        ws.send(json.dumps({"type": "end"}))
        thread.join(timeout=120)
    text = " ".join(m["text"] for m in messages if m["type"] == "final")
    speech = marks.get("speech", t0)
    first = next((m for m in messages if m["type"] == "partial"), None)
    waited = round((first["end"] - sent_at_speech) * 1000) if first else None
    return {
        "clip": path.name,
        "audio_s": round(len(pcm) / 2 / rate, 2),
        "first_partial_ms": round((marks["first_partial"] - speech) * 1000)
        if "first_partial" in marks
        else None,
        "first_partial_audio_wait_ms": waited,
        "first_partial_text": first["text"] if first else None,
        "first_final_ms": round((marks["first_final"] - speech) * 1000) if "first_final" in marks else None,
        "done_after_end_ms": round((marks["done"] - marks["end"]) * 1000) if "done" in marks else None,
        "partials": sum(m["type"] == "partial" for m in messages),
        "text": text,
    }


def _summary(label: str, model: str, rows: list[dict[str, Any]], refs: list[str]) -> dict[str, Any]:
    import asr as bench_asr

    firsts = [r["first_partial_ms"] for r in rows if r["first_partial_ms"] is not None]
    waits = [r["first_partial_audio_wait_ms"] for r in rows if r["first_partial_audio_wait_ms"] is not None]
    rest = [
        r["first_partial_ms"] - r["first_partial_audio_wait_ms"]
        for r in rows
        if r["first_partial_ms"] is not None and r["first_partial_audio_wait_ms"] is not None
    ]

    def pct(xs: list[int], q: float) -> float | None:
        return float(np.percentile(xs, q)) if xs else None

    return {
        "server": label,
        "model": model,
        "streams": len(rows),
        "wer": round(bench_asr.wer(refs, [r["text"] for r in rows]), 4),
        "first_partial_ms_median": pct(firsts, 50),
        "first_partial_ms_p95": pct(firsts, 95),
        "first_partial_ms_max": max(firsts) if firsts else None,
        "first_partial_audio_wait_ms_median": pct(waits, 50),
        "first_partial_compute_ms_median": pct(rest, 50),
        "first_partial_compute_ms_p95": pct(rest, 95),
        "done_after_end_ms_median": float(np.median([r["done_after_end_ms"] for r in rows])),
        "clips": rows,
    }


def main() -> None:
    import asr as bench_asr

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/asr_stream.json")
    ap.add_argument("--doc", default=None)
    ap.add_argument("--also-src", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--repeat", type=int, default=1, help="each clip this many times per server and model")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_child()
        return
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
        "repeat": args.repeat,
        "runs": [],
    }
    children = [ChildServer(label, Path(src)) for label, src in (a.split("=", 1) for a in args.also_src)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base, key, (vv, server) = serve(Path(tmp))
            servers = [("this tree", base, key), *((c.label, c.base, c.key) for c in children)]
            result["servers"] = {"this tree": str(ROOT / "src"), **{c.label: c.src for c in children}}
            for model in MODELS:
                vv.engines.transcriber(model)  # loaded before the clock starts, as on a warm server
                rows: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in servers}
                for _ in range(args.repeat):
                    for path, _ref in items:
                        for label, url, secret in servers:  # in turn: the same load for each
                            rows[label].append(one_stream(url, secret, model, path))
                refs = [ref for _, ref in items] * args.repeat
                for label, _, _ in servers:
                    result["runs"].append(_summary(label, model, rows[label], refs))
                    print(
                        json.dumps({k: v for k, v in result["runs"][-1].items() if k != "clips"}), flush=True
                    )
            server.should_exit = True  # before the data dir goes
            time.sleep(1.0)
    finally:
        for child in children:
            child.stop()
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
        f"Streaming (`WS /v1/speech-to-text/stream`), the five LibriVox clips (x{r.get('repeat', 1)}) "
        "sent as "
        f"{r['frame_s']:g} s PCM frames at real-time pace to warm servers on the same machine ({m['cores']} "
        f"cores, {m['cpu']}; load average {m['load_average_1min_before']:.1f} before, "
        f"{m['load_average_1min_after']:.1f} after, other engineers' work included; servers taking turns "
        "clip by clip). First partial: from the first frame with speech to the first `partial` message, "
        "split into the audio it waited for and the rest (model step, queueing, socket); done: from `end` "
        "to the `done` message.",
        "",
        "| server | model | WER of the finals | first partial p50 / p95 (ms) | of which audio wait, p50 "
        "| rest (model), p50 / p95 | done after end, p50 (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        lines.append(
            f"| {run.get('server', 'this tree')} | {run['model']} | {run['wer']:.3f} "
            f"| {run['first_partial_ms_median']:.0f} / {run['first_partial_ms_p95']:.0f} "
            f"| {run['first_partial_audio_wait_ms_median']:.0f} "
            f"| {run['first_partial_compute_ms_median']:.0f} / {run['first_partial_compute_ms_p95']:.0f} "
            f"| {run['done_after_end_ms_median']:.0f} |"
        )
    lines.append(END)
    replace_block(path, "\n".join(lines), BEGIN, END, heading="### Streaming transcription")


if __name__ == "__main__":
    main()
