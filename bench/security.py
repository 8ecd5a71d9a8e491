"""Security benchmark: a bounded fuzz run and hand-made nasty inputs against a live server (issue 29).

The server is ``voxvault serve`` in a subprocess on a free loopback port (a temporary data directory,
``VOXVAULT_BOOTSTRAP_KEY``, rate limits off so the fuzzer is not answered 429, everything else at its
defaults). Each class of inputs runs on its own, and for each the report gives:

* ``requests``: requests (or connections) sent;
* ``server_errors``: 5xx answers seen by the client, broken responses (a stream cut off, a reset), and
  ``internal_error`` counted by the server's own metrics, whichever is larger;
* ``peak_rss_growth_mb``: the server's highest resident memory during the class minus its resident
  memory when the class began (sampled every 20 ms from /proc); requests within a class run one after
  another, so this bounds what any one of them grew the server by;
* ``seconds``: wall time of the class; ``statuses``: how the requests were answered.

Classes: ``fuzz`` (schemathesis over /openapi.json: examples, coverage, fuzzing and stateful phases,
bounded by --fuzz-examples per operation and --fuzz-seconds in all); ``ssml_bombs`` (the audit's pause
bombs, break counts, deep nesting); ``entity_expansion`` (billion laughs, external and parameter
entities); ``invalid_text`` (lone surrogates and NULs on every text route and the WebSocket);
``uploads`` (over the size limit with and without a Content-Length, truncated, mislabelled, a compressed
file of 10 minutes of silence, empty); ``slow_clients`` (WebSocket and HTTP clients that never read).

    python bench/security.py --out bench/results/security.json --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from doc_block import replace_block
from stream import Server as StreamServer

ROOT = Path(__file__).resolve().parents[1]
DOC_BEGIN, DOC_END = "<!-- bench-security:begin -->", "<!-- bench-security:end -->"
BREAK = '<break time="10s"/>'


@dataclass
class ClassResult:
    name: str
    requests: int = 0
    server_errors: int = 0
    peak_rss_growth_mb: float = 0.0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    largest: list[str] = field(default_factory=list)  # the requests that grew the server most
    notes: list[str] = field(default_factory=list)

    def saw(self, status: int | str) -> None:
        self.requests += 1
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if isinstance(status, int) and status >= 500 or key in ("reset", "broken"):
            self.server_errors += 1


# --------------------------------------------------------------------------------------------- server
class Server(StreamServer):
    """The stream bench's ``voxvault serve`` (a 5 s send timeout, so never-reading clients are dropped
    within a class), plus the server's own error and status counts; its RSS is sampled while a class runs."""

    def __init__(self, data_dir: Path, key: str) -> None:
        super().__init__(data_dir, key, {"VOXVAULT_STREAM_SEND_TIMEOUT_S": "5"})

    def internal_errors(self) -> int:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        m = re.search(r'voxvault_errors_total\{code="internal_error"\} ([0-9.e+]+)', text)
        return int(float(m.group(1))) if m else 0

    def statuses(self) -> dict[str, int]:
        """HTTP answers so far by status, from the server's request histogram."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        counts: dict[str, int] = {}
        pattern = r'voxvault_http_request_duration_seconds_count\{[^}]*status="(\d+)"[^}]*\} ([0-9.e+]+)'
        for status, n in re.findall(pattern, text):
            counts[status] = counts.get(status, 0) + int(float(n))
        return counts

    def tracebacks(self) -> int:
        self.log.flush()
        return self.log_path.read_text(errors="replace").count("Traceback")

    def alive(self) -> bool:
        return self.proc.poll() is None


class Meter:
    """The server's peak RSS since the class began, and since the current request began."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.base = server.rss_mb()
        self.peak = self.base
        self.request_base = self.base
        self.request_peak = self.base
        self.growth: list[tuple[float, str]] = []

    def sample(self) -> None:
        rss = self.server.rss_mb()
        self.peak = max(self.peak, rss)
        self.request_peak = max(self.request_peak, rss)

    def begin(self) -> None:
        self.request_base = self.request_peak = self.server.rss_mb()

    def end(self, label: str) -> None:
        self.sample()
        self.growth.append((self.request_peak - self.request_base, label))


_meter: Meter | None = None


@contextmanager
def measured(server: Server, result: ClassResult) -> Iterator[None]:
    """Time the class, sample the server's RSS, and take the server's own error counts."""
    global _meter
    meter = _meter = Meter(server)
    base_rss = meter.base
    base_errors, base_tb = server.internal_errors(), server.tracebacks()
    base_statuses = server.statuses()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            meter.sample()
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        result.seconds = round(time.perf_counter() - t0, 1)
        stop.set()
        sampler.join()
        result.peak_rss_growth_mb = round(meter.peak - base_rss, 1)
        result.largest = [f"+{g:.0f} MB {label}" for g, label in sorted(meter.growth, reverse=True)[:3]]
        _meter = None
        if not server.alive():
            result.notes.append("the server died")
            result.server_errors += 1
        else:
            counted = server.internal_errors() - base_errors
            result.server_errors = max(result.server_errors, counted)
            if not result.statuses:  # the fuzz class: what the server answered
                now = server.statuses()
                result.statuses = {k: v - base_statuses.get(k, 0) for k, v in now.items()}
                result.statuses = {k: v for k, v in result.statuses.items() if v > 0}
            tracebacks = server.tracebacks() - base_tb
            if tracebacks:
                result.notes.append(f"{tracebacks} traceback(s) in the server log")


def call(
    result: ClassResult, fn: Callable[[], httpx.Response], expect: set[int] | None = None, label: str = ""
) -> None:
    if _meter is not None:
        _meter.begin()
    try:
        r = fn()
        if _meter is not None:
            _meter.end(f"{label or _label(fn)} -> {r.status_code}")
        result.saw(r.status_code)
        if expect is not None and r.status_code not in expect:
            result.notes.append(f"unexpected {r.status_code}: {r.text[:120]}")
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        result.saw("broken")
        result.notes.append(f"broken response: {type(exc).__name__}")
    except httpx.TimeoutException:
        result.saw("timeout")


# ----------------------------------------------------------------------------------------------- fuzz
def run_fuzz(server: Server, key: str, examples: int, seconds: int, workdir: Path) -> ClassResult:
    """Two schemathesis runs: the stateless phases with two thirds of the budget, then the stateful phase
    alone with the rest (in one run the stateless phases can spend the whole budget first)."""
    result = ClassResult("fuzz")
    stateless = max(1, seconds * 2 // 3)
    runs = [("examples,coverage,fuzzing", stateless), ("stateful", max(1, seconds - stateless))]
    summaries = []
    with measured(server, result):
        for phases, budget in runs:
            report = workdir / f"schemathesis-{phases.split(',')[0]}.json"
            command = [
                str(Path(sys.executable).with_name("st")),
                "run",
                f"{server.url}/openapi.json",
                f"--phases={phases}",
                "--checks=not_a_server_error,status_code_conformance",
                f"--max-examples={examples}",
                f"--max-time={budget}",
                "--request-timeout=60",
                "--seed=29",
                "--workers=1",
                "--header",
                f"Authorization: Bearer {key}",
                "--generation-allow-x00=true",
                "--suppress-health-check=all",
                "--report=json",
                f"--report-json-path={report}",
                "--warnings=off",
            ]
            proc = subprocess.run(  # in the work dir: schemathesis keeps a cache in its working directory
                command, capture_output=True, text=True, timeout=budget + 600, check=False, cwd=workdir
            )
            (workdir / f"{report.stem}.out").write_text(proc.stdout + proc.stderr)
            if os.environ.get("VV_KEEP_FUZZ_REPORT") and report.exists():
                Path(os.environ["VV_KEEP_FUZZ_REPORT"] + report.name).write_bytes(report.read_bytes())
            summaries.append(_fuzz_summary(report, proc.stdout))
    result.requests = sum(result.statuses.values())  # as the server counted them (measured())
    result.server_errors = max(result.server_errors, sum(s["server_errors"] for s in summaries))
    result.notes += [note for s in summaries for note in s["notes"]]
    return result


def _fuzz_summary(report: Path, stdout: str) -> dict[str, Any]:
    """Test cases, phases and failures from schemathesis' JSON report."""
    out: dict[str, Any] = {"cases": 0, "server_errors": 0, "notes": []}
    if not report.exists():
        out["notes"].append("no schemathesis report: " + stdout[-300:].replace("\n", " "))
        return out
    data = json.loads(report.read_text())
    out["cases"] = int(data.get("test_cases", {}).get("generated", 0))
    failures = [json.dumps(f) for f in data.get("failures", [])]
    server = [f for f in failures if "not_a_server_error" in f or "Server error" in f]
    out["server_errors"] = len(server)
    other = len(failures) - len(server)
    phases = ", ".join(f"{k} {v.get('status')}" for k, v in data.get("phases", {}).items())
    ops = data.get("operations", {})
    out["notes"].append(
        f"schemathesis: {out['cases']} test cases over {ops.get('tested')} of {ops.get('total')} operations "
        f"({phases}); stopped by {data.get('stop_reason')}; failures: {len(server)} server errors, "
        f"{other} other (status-code conformance)"
    )
    out["notes"] += [f[:300] for f in failures[:5]]
    return out


# ---------------------------------------------------------------------------------- hand-made inputs
def speech_routes(text: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/v1/audio/speech", {"input": text, "voice": "alpha", "response_format": "mp3"}),
        ("/v1/text-to-speech/alpha", {"text": text}),
        ("/v1/text-to-speech/alpha/stream", {"text": text}),
    ]


def run_first_use(server: Server, client: httpx.Client) -> ClassResult:
    """One refused request to each route whose engine loads on first use (Whisper): that load is a one-off,
    measured here so the other classes measure what requests cost once the engines are in memory."""
    result = ClassResult("first_use")
    with measured(server, result):
        files = {"file": ("x.wav", _wav(0.2)[:100], "audio/wav")}
        call(
            result, partial(client.post, "/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
        )
        call(result, partial(client.post, "/v1/watermark/detect", files=files))
    return result


def run_ssml_bombs(server: Server, client: httpx.Client) -> ClassResult:
    result = ClassResult("ssml_bombs")
    small = "<speak>Hi" + BREAK * 25 + "</speak>"  # the audit's 492 bytes: 251 s, served in full
    cases: list[tuple[str, set[int]]] = [
        (small, {200}),
        ("<speak>Hi" + BREAK * 1000 + "</speak>", {413}),  # 10,000 s: too many breaks
        ("<speak>" + ("Go." + BREAK) * 400 + "</speak>", {413}),  # 4,000 s: too long
        ("<speak>Hi" + '<break strength="x-strong"/>' * 500 + "</speak>", {200}),  # 600 s, allowed
        ("<speak>" + '<prosody rate="x-slow">' * 400 + "Hi" + "</prosody>" * 400 + "</speak>", {200, 400}),
        ("<speak>" + "<p>" * 3000 + "</speak>", {400}),  # malformed, deep
    ]
    with measured(server, result):
        for text, expect in cases:
            for path, body in speech_routes(text):
                call(result, partial(client.post, path, json=body, timeout=300), expect)
    return result


def run_entities(server: Server, client: httpx.Client) -> ClassResult:
    result = ClassResult("entity_expansion")
    laughs = '<!ENTITY a "lol">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    )
    docs = [
        f'<?xml version="1.0"?><!DOCTYPE speak [{laughs}]><speak>&j;</speak>',
        '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY x SYSTEM "file:///etc/passwd">]><speak>&x;</speak>',
        '<?xml version="1.0"?><!DOCTYPE speak [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd"> %p;]>'
        "<speak>a</speak>",
        '<speak xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></speak>',
        "<speak>&unknown;</speak>",
        "<speak>" + "&#46;" * 3000 + "</speak>",  # 3,000 character references to "."
    ]
    with measured(server, result):
        for doc in docs:
            for path, body in speech_routes(doc):
                call(result, partial(client.post, path, json=body, timeout=120), {400, 413})
    return result


def run_invalid_text(server: Server, client: httpx.Client, key: str) -> ClassResult:
    result = ClassResult("invalid_text")
    bad = ["\\ud800", "a\\udfffb", "\\udc00\\ud800", "x\\u0000y"]
    routes = [
        ("POST", "/v1/audio/speech", '{"input": "%s", "voice": "alpha"}'),
        ("POST", "/v1/text-to-speech/alpha", '{"text": "%s"}'),
        ("POST", "/v1/text-to-speech/alpha/stream", '{"text": "%s"}'),
        ("POST", "/v1/keys", '{"name": "%s", "scopes": ["voices:read"]}'),
        ("POST", "/v1/consents", '{"speaker_name": "%s", "organization": "a", "purpose": "b"}'),
        ("PATCH", "/v1/voices/v-x", '{"name": "%s"}'),
        ("POST", "/v1/projects", '{"name": "%s"}'),
    ]
    json_header = {"content-type": "application/json"}
    with measured(server, result):
        for text in bad:
            for method, path, template in routes:
                content = template.replace("%s", text).encode()
                call(
                    result,
                    partial(client.request, method, path, content=content, headers=json_header),
                    {400},
                )
            line = ('{"id": "a", "text": "' + text + '"}\n').encode()
            call(
                result,
                partial(
                    client.post, "/v1/batches", content=line, headers={"content-type": "application/x-ndjson"}
                ),
                {400},
            )
        raw = b'{"input": "\xed\xa0\x80", "voice": "alpha"}'
        call(result, lambda: client.post("/v1/audio/speech", content=raw, headers=json_header), {400})
        utf16 = json.dumps({"input": "hi", "voice": "alpha"}).encode("utf-16")
        call(result, lambda: client.post("/v1/audio/speech", content=utf16, headers=json_header), {400})
        call(result, lambda: client.get("/v1/voices/a%00b"), {400})
        for text in bad:
            result.saw(_ws_invalid(server, key, text))
    return result


def _ws_invalid(server: Server, key: str, text: str) -> int | str:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = server.url.replace("http", "ws") + "/v1/text-to-speech/alpha/stream-input"
    try:
        with connect(url, additional_headers={"xi-api-key": key}, open_timeout=10, close_timeout=5) as ws:
            ws.send('{"text": " "}')
            ws.send('{"text": "Hello ' + text + '", "flush": true}')
            while True:
                ws.recv(timeout=30)
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else 1006
        return 400 if code == 1007 else (500 if code == 1011 else f"ws-{code}")
    except TimeoutError:
        return "timeout"


def _wav(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate) * channels)
    return buf.getvalue()


def _silent_flac(seconds: float) -> bytes:
    from voxvault.audio import encode

    return encode(np.zeros(int(seconds * 48_000), np.float32), 48_000, "flac")


def run_uploads(server: Server, client: httpx.Client, limit: int) -> ClassResult:
    result = ClassResult("uploads")
    consent = client.post(
        "/v1/consents",
        json={"speaker_name": "Sam", "organization": "Acme", "purpose": "t", "expires_in_days": 1},
    ).json()["consent_id"]
    wav = _wav(3.0)
    truncated = bytearray(wav[:2000])
    truncated[40:44] = (10**9).to_bytes(4, "little")  # the data chunk claims a gigabyte
    weird = bytearray(_wav(0.5))
    weird[22:24] = (65535).to_bytes(2, "little")  # 65,535 channels
    weird[24:28] = (4_000_000_000).to_bytes(4, "little")  # 4 GHz
    payloads: list[tuple[str, bytes, str]] = [
        ("truncated", bytes(truncated), "audio/wav"),
        ("absurd-header", bytes(weird), "audio/wav"),
        ("random-as-wav", os.urandom(200_000), "audio/wav"),
        ("png-as-mp3", b"\x89PNG\r\n\x1a\n" + os.urandom(5000), "audio/mpeg"),
        ("json-as-wav", b'{"a": 1}', "audio/wav"),
        ("empty", b"", "audio/wav"),
        ("flac-10min-silence", _silent_flac(600.0), "audio/flac"),
        ("flac-11min-silence", _silent_flac(660.0), "audio/flac"),
    ]
    routes: list[tuple[str, str, dict[str, str]]] = [
        ("/v1/watermark/detect", "file", {}),
        (f"/v1/consents/{consent}/enroll", "recording", {"challenge": "1 2 3 4 5 6"}),
        (f"/v1/consents/{consent}/verify", "recording", {"challenge": "1 2 3 4 5 6", "voice_id": "v-x"}),
        ("/v1/audio/transcriptions", "file", {"model": "whisper-1"}),
    ]
    with measured(server, result):
        for route, field_name, fields in routes:
            for name, data, ctype in payloads:
                if route.startswith("/v1/audio/") and name.startswith("flac"):
                    continue  # ten minutes of real audio would be transcribed: a load test, not this
                files = {field_name: (f"{name}.bin", data, ctype)}
                call(
                    result,
                    partial(client.post, route, files=files, data=fields, timeout=120),
                    label=f"{name} to {route}",
                )
            # Over the limit, announced (Content-Length) and not (chunked).
            big = b"\x00" * (limit + 5 * 1024 * 1024)
            call(
                result,
                partial(client.post, route, files={field_name: ("big.wav", big, "audio/wav")}),
                {413},
            )
            call(
                result,
                partial(
                    client.post,
                    route,
                    content=_chunks(limit + 5 * 1024 * 1024),
                    headers={"content-type": "multipart/form-data; boundary=x"},
                ),
                {400, 413, 422},
            )
        # Batches: raw bodies, mislabelled and oversized.
        for content, ctype in (
            (b"\xff\xfe" + os.urandom(1000), "text/csv"),
            (b'{"id": "a", "text": "hi"}\n' * 3 + b"{not json\n", "application/x-ndjson"),
            (b"id,text\n" + b"a," + b"x" * 30_000 + b"\n", "text/csv"),
            (os.urandom(4000), "application/octet-stream"),
        ):
            call(
                result,
                partial(client.post, "/v1/batches", content=content, headers={"content-type": ctype}),
            )
        call(
            result,
            lambda: client.post(
                "/v1/batches",
                content=_chunks(limit + 5 * 1024 * 1024),
                headers={"content-type": "application/x-ndjson"},
            ),
            {413},
        )
    return result


def _label(fn: Callable[[], httpx.Response]) -> str:
    args = getattr(fn, "args", ())
    return " ".join(str(a) for a in args if isinstance(a, str))[:80]


def _chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    block = b'{"id": "x", "text": "y"}\n' * (size // 25)
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


def run_slow_clients(server: Server, client: httpx.Client, key: str) -> ClassResult:
    """Clients that ask for a lot and never read: the server must drop them, not buffer for them."""
    from websockets.sync.client import connect

    result = ClassResult("slow_clients")
    text = "The quick brown fox jumps over the lazy dog near the river bank. " * 40
    with measured(server, result):
        url = (
            server.url.replace("http", "ws") + "/v1/text-to-speech/alpha/stream-input?output_format=pcm_24000"
        )
        sockets = []
        for _ in range(3):
            ws = connect(url, additional_headers={"xi-api-key": key}, open_timeout=10, max_size=None)
            ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            ws.send('{"text": " "}')
            for _ in range(20):
                ws.send(json.dumps({"text": text[:2000], "flush": True}))
            sockets.append(ws)
            result.requests += 1
        raw = []
        for _ in range(3):  # HTTP: a long stream nobody reads
            s = socket.create_connection(("127.0.0.1", server.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            body = json.dumps({"input": text, "voice": "alpha", "response_format": "pcm"}).encode()
            s.sendall(
                b"POST /v1/audio/speech HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                + f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            raw.append(s)
            result.requests += 1
        # The server gives each send VOXVAULT_STREAM_SEND_TIMEOUT_S (5 s here); wait for it to let go.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _active(server) > 0:
            time.sleep(1)
        left = _active(server)
        if left:
            result.notes.append(f"{left} synthesis still running after 90 s")
            result.server_errors += left
        healthy = client.get("/healthz", timeout=10).status_code
        result.saw(healthy)
        for ws in sockets:
            ws.close_socket()
        for s in raw:
            s.close()
    return result


def _active(server: Server) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    m = re.search(r"^voxvault_active_syntheses ([0-9.]+)", text, re.MULTILINE)
    return int(float(m.group(1))) if m else 0


# ------------------------------------------------------------------------------------------------ main
def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_1min_start": round(os.getloadavg()[0], 2),
    }


def render_doc(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        DOC_BEGIN,
        "",
        f"`make bench-security` ({report['date']}): {m['cores']} cores, 1-minute load "
        f"{m['load_1min_start']} at the start and {m['load_1min_end']} at the end (shared with other "
        f"work); server RSS {report['server_rss_mb_start']} MB after warm-up. Fuzz: schemathesis "
        f"{report['schemathesis']}, phases examples, coverage, fuzzing, stateful, "
        f"{report['fuzz_examples']} examples per operation, {report['fuzz_seconds']} s budget.",
        "",
        "| class | requests | 5xx / broken | peak RSS growth (MB) | time (s) | answers |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for c in report["classes"]:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(c["statuses"].items()))
        lines.append(
            f"| {c['name']} | {c['requests']} | {c['server_errors']} | {c['peak_rss_growth_mb']} | "
            f"{c['seconds']} | {answers} |"
        )
    notes = [f"* {c['name']}: {n}" for c in report["classes"] for n in c["notes"]]
    if notes:
        lines += ["", *notes]
    lines += ["", DOC_END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "security.json")
    parser.add_argument("--doc", type=Path, default=None)
    parser.add_argument("--fuzz-examples", type=int, default=10)
    parser.add_argument("--fuzz-seconds", type=int, default=150)
    parser.add_argument("--only", default="", help="comma-separated classes to run (default: all)")
    args = parser.parse_args()
    import schemathesis

    only = {c for c in args.only.split(",") if c}
    key = "vv_bench_" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="vv-security-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        server = Server(data, key)
        try:
            server.wait_ready()
            report: dict[str, Any] = {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
                "schemathesis": schemathesis.__version__ if hasattr(schemathesis, "__version__") else "?",
                "fuzz_examples": args.fuzz_examples,
                "fuzz_seconds": args.fuzz_seconds,
                "server_rss_mb_start": round(server.rss_mb(), 1),
                "classes": [],
            }
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
                limit = 50 * 1024 * 1024
                runs: list[tuple[str, Callable[[], ClassResult]]] = [
                    ("first_use", lambda: run_first_use(server, client)),
                    ("ssml_bombs", lambda: run_ssml_bombs(server, client)),
                    ("entity_expansion", lambda: run_entities(server, client)),
                    ("invalid_text", lambda: run_invalid_text(server, client, key)),
                    ("uploads", lambda: run_uploads(server, client, limit)),
                    ("slow_clients", lambda: run_slow_clients(server, client, key)),
                    ("fuzz", lambda: run_fuzz(server, key, args.fuzz_examples, args.fuzz_seconds, work)),
                ]
                for name, run in runs:
                    if only and name not in only:
                        continue
                    print(f"{name} ...", flush=True)
                    result = run()
                    print(f"  {json.dumps(asdict(result))[:400]}", flush=True)
                    report["classes"].append(asdict(result))
                    if not server.alive():
                        break
            report["machine"]["load_1min_end"] = round(os.getloadavg()[0], 2)
            report["server_rss_mb_end"] = round(server.rss_mb(), 1)
        finally:
            server.stop()
            log = server.log_path.read_text(errors="replace")
            if "Traceback" in log:
                kept = Path(tempfile.gettempdir()) / "vv-security-server.log"
                kept.write_text(log[-20_000:])
                print(f"the server logged tracebacks: {kept}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.doc is not None:
        replace_block(args.doc, render_doc(report), DOC_BEGIN, DOC_END, heading="## Security (issue 29)")
        print(f"updated {args.doc}")


if __name__ == "__main__":
    main()
