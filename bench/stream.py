"""Streaming benchmark: time to first audio and real-time factor at 1, 4 and 16 concurrent streams.

The server is ``voxvault serve`` in a subprocess on a free loopback port (a temporary data directory,
``VOXVAULT_BOOTSTRAP_KEY``, rate limits off, the model cache shared with the tests); the load generator
is this process, with httpx/websockets async clients. Each level is a closed loop: ``c`` clients each
send a fixed number of requests back to back (a 429 counts as one, and the client waits its Retry-After
before the next), so every level ends in bounded time.

What is measured, per request, on the client:

* stream: ``POST /v1/text-to-speech/{voice}/stream?output_format=pcm_24000``. Time to first audio is
  until the first non-empty body chunk arrives.
* baseline: the same text through ``POST /v1/text-to-speech/{voice}`` (the whole file is rendered, then
  sent: what a plain non-streaming TTS server does). Its time to first audio is until the whole body
  has arrived, since nothing can be played earlier.
* websocket (1 and 4 clients): ``stream-input`` fed the same text in 4-character pieces at 200
  characters per second, like a language model writing. Time to first audio counts from the moment the
  first sentence is complete at the client.
* real-time factor: time from request to the last byte divided by the seconds of audio received.

Only served requests enter the percentiles; refusals are counted (``refused_429``) and any other
failure is counted in ``errors``.

    python bench/stream.py --out bench/results/stream.json --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from doc_block import replace_block

ROOT = Path(__file__).resolve().parents[1]
LEVELS = (1, 4, 16)
REQUESTS_PER_CLIENT = {1: 8, 4: 3, 16: 2}
WS_LEVELS = (1, 4)
WS_CHARS_PER_S = 200.0
WS_PIECE = 4
BYTES_PER_SECOND = 24_000 * 2  # pcm_24000: 16-bit mono
DOC_BEGIN, DOC_END = "<!-- bench-stream:begin -->", "<!-- bench-stream:end -->"

# What a voice agent says in one turn: two or three sentences, 6-10 s of speech.
TEXTS = [
    "Sure, I can help with that. Your order shipped this morning and should arrive on Thursday. "
    "Is there anything else you would like to know?",
    "Thanks for waiting. I checked the schedule, and the next train to the airport leaves at a quarter "
    "past four from platform two.",
    "That is a great question. The museum opens at nine on weekdays, and tickets are cheaper if you "
    "book them online the day before.",
    "I am sorry to hear that. Let me reset your password now; you will get an email with a link in a "
    "minute or two.",
]


@dataclass
class Sample:
    ok: bool
    status: int
    ttfa_s: float = 0.0
    total_s: float = 0.0
    audio_s: float = 0.0


@dataclass
class Phase:
    mode: str
    clients: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        served = [s for s in self.samples if s.ok]
        refused = sum(1 for s in self.samples if s.status == 429)
        out: dict[str, Any] = {
            "clients": self.clients,
            "requests": len(self.samples),
            "served": len(served),
            "refused_429": refused,
            "errors": len(self.samples) - len(served) - refused,
            "wall_s": round(self.wall_s, 2),
        }
        if served:
            ttfa = sorted(s.ttfa_s for s in served)
            rtf = sorted(s.total_s / s.audio_s for s in served if s.audio_s > 0)
            out.update(
                ttfa_p50_ms=round(percentile(ttfa, 50) * 1000, 1),
                ttfa_p95_ms=round(percentile(ttfa, 95) * 1000, 1),
                ttfa_p99_ms=round(percentile(ttfa, 99) * 1000, 1),
                rtf_p50=round(percentile(rtf, 50), 3) if rtf else None,
                rtf_p95=round(percentile(rtf, 95), 3) if rtf else None,
                audio_s_mean=round(statistics.fmean(s.audio_s for s in served), 2),
            )
        return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


# ------------------------------------------------------------------------------------------ server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``voxvault serve`` in its own process group, stopped with SIGTERM (SIGKILL if it lingers)."""

    def __init__(self, data_dir: Path, key: str, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "VOXVAULT_DATA_DIR": str(data_dir),
            "VOXVAULT_CACHE_DIR": str(ROOT / ".cache" / "models"),
            "VOXVAULT_BOOTSTRAP_KEY": key,
            "VOXVAULT_RATE_LIMIT_PER_KEY_PER_MINUTE": "0",
            "VOXVAULT_RATE_LIMIT_PER_VOICE_PER_MINUTE": "0",
            "VOXVAULT_LOG_LEVEL": "warning",
            **extra_env,
        }
        self.log_path = data_dir / "server.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voxvault", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server did not become ready")

    def rss_mb(self) -> float:
        """The server process's resident memory now (0 once it is gone)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        m = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(m.group(1)) / 1024 if m else 0.0

    def check(self) -> None:
        """Fail loudly, with the end of the server's log, if it is gone."""
        if self.proc.poll() is not None:
            self.log.flush()
            tail = Path(self.log.name).read_text()[-4000:]
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# ------------------------------------------------------------------------------------------ clients
async def http_request(client: httpx.AsyncClient, url: str, text: str, streaming: bool) -> Sample:
    t0 = time.perf_counter()
    first = 0.0
    size = 0
    path = "/v1/text-to-speech/alpha/stream" if streaming else "/v1/text-to-speech/alpha"
    async with client.stream(
        "POST", f"{url}{path}?output_format=pcm_24000", json={"text": text, "model_id": "bench"}
    ) as r:
        if r.status_code != 200:
            await r.aread()
            return Sample(False, r.status_code)
        async for chunk in r.aiter_raw():
            if chunk and not first:
                first = time.perf_counter()
            size += len(chunk)
    end = time.perf_counter()
    ttfa = (first - t0) if streaming else (end - t0)
    return Sample(size > 0, 200, ttfa, end - t0, size / BYTES_PER_SECOND)


async def ws_request(ws_url: str, key: str, text: str) -> Sample:
    import websockets

    t0 = time.perf_counter()
    first_sentence_at = 0.0
    size = 0
    first_audio = 0.0
    uri = f"{ws_url}/v1/text-to-speech/alpha/stream-input?output_format=pcm_24000&binary_audio=true"
    try:
        async with websockets.connect(uri, additional_headers={"xi-api-key": key}, max_size=None) as ws:
            await ws.send(json.dumps({"text": " "}))

            async def writer() -> None:
                nonlocal first_sentence_at
                for i in range(0, len(text), WS_PIECE):
                    piece = text[i : i + WS_PIECE]
                    await ws.send(json.dumps({"text": piece}))
                    if not first_sentence_at and any(ch in ".?!" for ch in piece):
                        first_sentence_at = time.perf_counter()
                    await asyncio.sleep(WS_PIECE / WS_CHARS_PER_S)
                await ws.send(json.dumps({"text": ""}))

            send_task = asyncio.create_task(writer())
            async for message in ws:
                if isinstance(message, bytes):
                    if not first_audio:
                        first_audio = time.perf_counter()
                    size += len(message)
                    continue
                data = json.loads(message)
                if data.get("isFinal"):
                    break
                if "error" in data:
                    send_task.cancel()
                    code = 429 if data["error"].get("code") == "server_busy" else 500
                    return Sample(False, code)
                if data.get("audio"):
                    first_audio = first_audio or time.perf_counter()
                    size += len(base64.b64decode(data["audio"]))
            await send_task
    except websockets.ConnectionClosed as exc:
        return Sample(False, 429 if exc.rcvd is not None and exc.rcvd.code == 1013 else 500)
    end = time.perf_counter()
    if not size:
        return Sample(False, 500)
    return Sample(True, 200, first_audio - first_sentence_at, end - t0, size / BYTES_PER_SECOND)


async def run_phase(mode: str, clients: int, url: str, key: str) -> Phase:
    phase = Phase(mode, clients)
    per_client = REQUESTS_PER_CLIENT[clients]
    ws_url = url.replace("http://", "ws://")
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=300, limits=limits, headers={"xi-api-key": key}) as client:

        async def one_client(n: int) -> None:
            for i in range(per_client):
                text = TEXTS[(n + i) % len(TEXTS)]
                try:
                    if mode == "websocket":
                        sample = await ws_request(ws_url, key, text)
                    else:
                        sample = await http_request(client, url, text, streaming=mode == "stream")
                except (httpx.HTTPError, OSError) as exc:
                    print(f"  {mode} c={clients}: {type(exc).__name__}", file=sys.stderr)
                    sample = Sample(False, 0)
                phase.samples.append(sample)
                if sample.status == 429:
                    await asyncio.sleep(1.0)  # the server's Retry-After

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(clients)))
        phase.wall_s = time.perf_counter() - t0
    return phase


# ------------------------------------------------------------------------------------------ report
def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 0.0
    import onnxruntime

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_gib, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def targets(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    one = results["1"]["stream"]
    sixteen = results["16"]["stream"]
    return {
        "ttfa_p50_1_stream_le_250ms": one.get("ttfa_p50_ms", 1e9) <= 250,
        "no_errors_but_429_at_16": sixteen["errors"] == 0,
        "ttfa_p95_16_served_le_2s": sixteen.get("ttfa_p95_ms", 1e9) <= 2000,
    }


HEADER = [
    "streams",
    "mode",
    "requests",
    "served",
    "429",
    "errors",
    "TTFA p50",
    "TTFA p95",
    "TTFA p99",
    "RTF p50",
]
METHOD = (
    "Server (`voxvault serve` with its defaults: Kokoro precision `auto` (int8-vnni on a VNNI CPU), "
    "2 model slots, a request admitted only if its first audio is expected within 1.5 s) and load "
    "generator in separate processes on loopback. "
    "Times in ms, measured by the client. *stream*: `/v1/text-to-speech/{voice}/stream`, first audio = "
    "first body chunk. *baseline*: the same text as a whole file from `/v1/text-to-speech/{voice}`, first "
    "audio = whole body. *websocket*: `stream-input` fed 4 characters at a time at 200 characters/s, first "
    "audio counted from the end of the first sentence. RTF = request time to last byte / audio seconds. "
    "Only served requests are in the percentiles; with this few requests p95/p99 are near the maximum."
)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    rows = []
    for level, modes in report["results"].items():
        for mode, r in modes.items():
            counts = [level, mode, r["requests"], r["served"], r["refused_429"], r["errors"]]
            if r.get("served"):
                timings = [f"{r[k]:.0f}" for k in ("ttfa_p50_ms", "ttfa_p95_ms", "ttfa_p99_ms")]
                counts += [*timings, f"{r['rtf_p50']:.3f}"]
            else:
                counts += ["", "", "", ""]
            rows.append("| " + " | ".join(str(c) for c in counts) + " |")
    checks = "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in report["targets"].items())
    where = (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}. Load average at start "
        f"{m['load_average_at_start']}, at end {report['load_average_at_end']}. "
        f"Run {report['date']}, {report['duration_s']:.0f} s."
    )
    return "\n".join(
        [
            DOC_BEGIN,
            "## Streaming (`make bench-stream`)",
            "",
            where,
            "",
            METHOD,
            "",
            "| " + " | ".join(HEADER) + " |",
            "|---:|---|" + "---:|" * (len(HEADER) - 2),
            *rows,
            "",
            f"Targets: {checks}.",
            DOC_END,
        ]
    )


def write_doc(path: Path, section: str) -> None:
    replace_block(path, section, DOC_BEGIN, DOC_END)


async def bench(server: Server, key: str) -> dict[str, dict[str, Any]]:
    url = server.url
    results: dict[str, dict[str, Any]] = {}
    # Warm the server's paths once (first requests pay lazy imports and the loudness measurement).
    await run_phase("stream", 1, url, key)
    for level in LEVELS:
        results[str(level)] = {}
        modes = ["stream", "baseline"] + (["websocket"] if level in WS_LEVELS else [])
        for mode in modes:
            server.check()
            phase = await run_phase(mode, level, url, key)
            results[str(level)][mode] = phase.summary()
            print(f"c={level:<2} {mode:<9} {json.dumps(results[str(level)][mode])}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stream.json")
    parser.add_argument(
        "--doc", type=Path, default=None, help="Markdown file whose stream section is rewritten"
    )
    args = parser.parse_args()

    t_start = time.perf_counter()
    key = f"vv_bench_{secrets.token_urlsafe(24)}"
    info = machine()
    with tempfile.TemporaryDirectory(prefix="vv-bench-stream-") as tmp:
        server = Server(Path(tmp), key, {})
        try:
            server.wait_ready()
            results = asyncio.run(bench(server, key))
        finally:
            server.stop()
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "duration_s": round(time.perf_counter() - t_start, 1),
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "texts": len(TEXTS),
        "requests_per_client": REQUESTS_PER_CLIENT,
        "results": results,
    }
    report["targets"] = targets(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.doc is not None:
        write_doc(args.doc, markdown(report))
        print(f"updated {args.doc}")


if __name__ == "__main__":
    main()
