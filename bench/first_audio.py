"""Time to first audio of a voice agent's opening sentence, by length of its opening clause (issue 28).

The server is ``voxvault serve`` in a subprocess (``bench/stream.py``'s ``Server``), once on the default
Kokoro precision and once forced to ``VOXVAULT_KOKORO_PRECISION=int8`` (the non-VNNI path). Each of the
30 openings of ``openers.OPENERS`` (1-19 words before the first comma) is streamed ``--repeats`` times
through each route, one request at a time:

* openai: ``POST /v1/audio/speech`` (pcm, streamed);
* elevenlabs: ``POST /v1/text-to-speech/{voice}/stream?output_format=pcm_24000``;
* websocket: ``stream-input`` (binary audio), the sentence sent whole with ``flush``; timed from the send.

Time to first audio (TTFA) is until the first audio bytes reach the client; the client then hangs up
(only the opening matters here, and a dropped stream is what a barge-in does), and waits ``--settle``
seconds so the dropped stream's piece in flight does not load the next request. Reported per route and
length bucket: p50/p95, and the ratios the issue sets: TTFA p50 (p95) over all openings / TTFA p50 of
"Okay." on the same route, and TTFA p50 / the stock-onnxruntime whole-text time of the same opening
(``bench/synthesis.py``'s ``Baseline``: the shipped int8 graph, one call, in this process, run while the
server idles).

Barge-in: a long answer is streamed (openai route), dropped at its first audio, and "Okay." is sent at
once; its TTFA against "Okay." on an idle server.

    python bench/first_audio.py --repeats 3 --out bench/results/first_audio.json --doc docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from doc_block import replace_block
from openers import OPENERS, bucket, words_before_comma
from stream import Server, machine, percentile

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("openai", "elevenlabs", "websocket")
BUCKETS = ("1-2", "3-5", "6-10", "11-20")
OKAY = "Okay."
LONG = " ".join(
    f"Sentence number {n} of a long answer keeps the model busy for a while." for n in range(1, 21)
)
# Whole answers streamed to the end (openai route, pcm): the real-time factor of a stream, start to last byte.
WHOLE = [
    OPENERS[9] + " Please arrive ten minutes early and bring your insurance card. If anything changes, "
    "call us back on this number and we will find another time for you.",
    OPENERS[16] + " A technician can visit on Monday or Wednesday morning. Which day suits you better?",
    OPENERS[27] + " If the email does not arrive within five minutes, look in your spam folder first, "
    "then ask me to send it again.",
]
PCM_BYTES_PER_S = 24_000 * 2
DOC_BEGIN, DOC_END = "<!-- bench-first-audio:begin -->", "<!-- bench-first-audio:end -->"


async def ttfa_http(client: httpx.AsyncClient, url: str, route: str, text: str) -> float:
    if route == "openai":
        request = client.stream(
            "POST",
            f"{url}/v1/audio/speech",
            json={"model": "tts-1", "voice": "alpha", "input": text, "response_format": "pcm"},
        )
    else:
        request = client.stream(
            "POST", f"{url}/v1/text-to-speech/alpha/stream?output_format=pcm_24000", json={"text": text}
        )
    t0 = time.perf_counter()
    async with request as r:
        if r.status_code != 200:
            raise RuntimeError(f"{route}: HTTP {r.status_code} {(await r.aread())[:200]!r}")
        async for chunk in r.aiter_raw():
            if chunk:
                return time.perf_counter() - t0
    raise RuntimeError(f"{route}: no audio")


async def whole_rtf(client: httpx.AsyncClient, url: str, text: str) -> float:
    """Seconds from request to last byte over seconds of audio, the whole answer streamed (openai, pcm)."""
    body = {"model": "tts-1", "voice": "alpha", "input": text, "response_format": "pcm"}
    t0 = time.perf_counter()
    n = 0
    async with client.stream("POST", f"{url}/v1/audio/speech", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"whole: HTTP {r.status_code}")
        async for chunk in r.aiter_raw():
            n += len(chunk)
    return (time.perf_counter() - t0) / (n / PCM_BYTES_PER_S)


async def ttfa_ws(url: str, key: str, text: str) -> float:
    import websockets

    uri = f"{url.replace('http://', 'ws://')}/v1/text-to-speech/alpha/stream-input?output_format=pcm_24000&binary_audio=true"
    async with websockets.connect(uri, additional_headers={"xi-api-key": key}, max_size=None) as ws:
        await ws.send(json.dumps({"text": " "}))
        t0 = time.perf_counter()
        await ws.send(json.dumps({"text": text + " ", "flush": True}))
        async for message in ws:
            if isinstance(message, bytes) and message:
                return time.perf_counter() - t0
            data = json.loads(message)
            if "error" in data:
                raise RuntimeError(f"websocket: {data['error']}")
    raise RuntimeError("websocket: no audio")


async def measure(
    urls: dict[str, str],
    key: str,
    repeats: int,
    settle: float,
    routes: tuple[str, ...] = ROUTES,
    barge_repeats: int = 0,
    whole_repeats: int = 0,
) -> dict[str, dict[str, Any]]:
    """TTFA samples per server name; the servers are asked in turn, request by request, so that a
    before/after pair shares the box's load (on a shared CPU the load swings between minutes)."""
    headers = {"xi-api-key": key, "authorization": f"Bearer {key}"}
    out: dict[str, dict[str, Any]] = {
        name: {
            "samples": {r: {t: [] for t in OPENERS} for r in routes},
            "barge_in_okay_s": [],
            "idle_okay_s": [],
            "whole_rtf": [],
        }
        for name in urls
    }

    async def ttfa(client: httpx.AsyncClient, url: str, route: str, text: str) -> float:
        if route == "websocket":
            return await ttfa_ws(url, key, text)
        return await ttfa_http(client, url, route, text)

    async with httpx.AsyncClient(timeout=120, headers=headers) as client:
        for url in urls.values():
            for route in routes:  # warm each path (lazy imports, the voice's loudness gain)
                for text in (OKAY, OPENERS[5]):
                    await ttfa(client, url, route, text)
                    await asyncio.sleep(settle)
        for rep in range(repeats):
            for text in OPENERS:
                for route in routes:
                    for name, url in urls.items():
                        out[name]["samples"][route][text].append(await ttfa(client, url, route, text))
                        await asyncio.sleep(settle)
            print(f"  repeat {rep + 1}/{repeats} done, load {os.getloadavg()[0]:.1f}", flush=True)
        for _ in range(barge_repeats or repeats):
            for name, url in urls.items():
                out[name]["idle_okay_s"].append(await ttfa_http(client, url, "openai", OKAY))
                await asyncio.sleep(settle)
                await ttfa_http(client, url, "openai", LONG)  # returns at first audio: the client hangs up
                out[name]["barge_in_okay_s"].append(await ttfa_http(client, url, "openai", OKAY))
                await asyncio.sleep(settle)
        for _ in range(whole_repeats):
            for text in WHOLE:
                for name, url in urls.items():
                    out[name]["whole_rtf"].append(await whole_rtf(client, url, text))
                    await asyncio.sleep(settle)
    return out


def baseline_times(openers: list[str], repeats: int) -> dict[str, float]:
    """Stock onnxruntime whole-text time of each opening (median of ``repeats``), in this process."""
    from synthesis import Baseline
    from voxvault.config import Settings
    from voxvault.service import VoxVault

    vv = VoxVault(
        Settings(data_dir=Path(tempfile.mkdtemp(prefix="vv-fa-")), cache_dir=ROOT / ".cache/models")
    )
    base = Baseline(vv)
    base.run(OPENERS[5])
    return {t: statistics.median(base.run(t)[0] for _ in range(repeats)) for t in openers}


def summarise(raw: dict[str, Any], baseline: dict[str, float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for route, per_text in raw["samples"].items():
        # "Okay." on an idle server: the openings' own samples, and on the openai route the barge-in
        # block's idle ones too (a steadier median when --repeats is 1 on a loaded box).
        okays = per_text[OKAY] + (raw["idle_okay_s"] if route == "openai" else [])
        okay = statistics.median(okays)
        everything = sorted(t for ts in per_text.values() for t in ts)
        buckets = {}
        for b in BUCKETS:
            ts = sorted(t for text, ts in per_text.items() if bucket(text) == b for t in ts)
            if ts:
                buckets[b] = {
                    "n": len(ts),
                    "p50_ms": round(percentile(ts, 50) * 1000),
                    "p95_ms": round(percentile(ts, 95) * 1000),
                }
        vs_base = [
            statistics.median(ts) / baseline[text]
            for text, ts in per_text.items()
            if text != OKAY and text in baseline
        ]
        out[route] = {
            "okay_p50_ms": round(okay * 1000),
            "all_p50_ms": round(percentile(everything, 50) * 1000),
            "all_p95_ms": round(percentile(everything, 95) * 1000),
            "p50_over_okay": round(percentile(everything, 50) / okay, 2),
            "p95_over_okay": round(percentile(everything, 95) / okay, 2),
            "ttfa_over_baseline_median": round(statistics.median(vs_base), 3) if vs_base else None,
            "buckets": buckets,
        }
    out["barge_in"] = {
        "okay_after_drop_p50_ms": round(statistics.median(raw["barge_in_okay_s"]) * 1000),
        "okay_idle_p50_ms": round(statistics.median(raw["idle_okay_s"]) * 1000),
    }
    if raw.get("whole_rtf"):
        out["whole_answer_rtf_median"] = round(statistics.median(raw["whole_rtf"]), 3)
    return out


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        DOC_BEGIN,
        "## First audio of an opening sentence (`make bench-first-audio`)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; load average at start {m['load_average_at_start']}, "
        f"at end {report['load_average_at_end']} (a CPU shared with other work: absolute times are noisy, "
        f"the ratios are to baselines measured in the same run). Run {report['date']}, "
        f"{report['duration_s']:.0f} s, {report['repeats']} repeats of {len(OPENERS)} openings per route, "
        "one request at a time, the client hanging up at first audio. Baseline: stock onnxruntime, shipped "
        f"int8 graph, whole opening in one call (median {report['baseline_median_ms']} ms).",
        "",
        "| precision | route | Okay. p50 | 1-2 words p50/p95 | 3-5 | 6-10 | 11-20 | all p50/p95 | p50/Okay | "
        "p95/Okay | TTFA/baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for precision, res in report["results"].items():
        for route in (r for r in ROUTES if r in res):
            r = res[route]
            cells = [
                f"{r['buckets'][b]['p50_ms']}/{r['buckets'][b]['p95_ms']}" if b in r["buckets"] else ""
                for b in BUCKETS
            ]
            lines.append(
                f"| {precision} | {route} | {r['okay_p50_ms']} | "
                + " | ".join(cells)
                + f" | {r['all_p50_ms']}/"
                f"{r['all_p95_ms']} | {r['p50_over_okay']} | {r['p95_over_okay']} | "
                f"{r['ttfa_over_baseline_median']} |"
            )
    lines += [
        "",
        'Barge-in (openai route, "Okay." sent right after a long stream was dropped at first audio):',
    ]
    for precision, res in report["results"].items():
        b = res["barge_in"]
        lines.append(
            f"{precision}: {b['okay_after_drop_p50_ms']} ms p50, against {b['okay_idle_p50_ms']} ms "
            "on an idle server."
        )
    key = "whole_answer_rtf_median"
    wholes = {p: r[key] for p, r in report["results"].items() if key in r}
    if wholes:
        lines += [
            "",
            f"Whole answers streamed to the last byte (openai route, pcm, {len(WHOLE)} answers of 3-4 "
            "sentences), real-time factor median: " + ", ".join(f"{p} {v}" for p, v in wholes.items()) + ".",
        ]
    lines.append(DOC_END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.3, help="seconds between requests")
    parser.add_argument("--precisions", nargs="+", default=["default", "int8"])
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    parser.add_argument("--no-baseline", action="store_true", help="skip the stock whole-text baseline")
    parser.add_argument("--barge-repeats", type=int, default=0, help="barge-in pairs (default: --repeats)")
    parser.add_argument("--whole-repeats", type=int, default=1, help="rounds of whole answers (RTF)")
    parser.add_argument(
        "--also-src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also serve from this source tree (an older commit: git archive REV src | tar -x -C DIR), "
        "timed in the same run, reported as PRECISION@LABEL",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "first_audio.json")
    parser.add_argument("--doc", type=Path, default=None)
    args = parser.parse_args()

    t_start = time.perf_counter()
    info = machine()
    key = f"vv_bench_{secrets.token_urlsafe(24)}"
    results: dict[str, Any] = {}
    raws: dict[str, Any] = {}
    sources: list[tuple[str, str | None]] = [("", None)]
    sources += [
        (f"@{label}", str(Path(src).resolve())) for label, src in (a.split("=", 1) for a in args.also_src)
    ]
    for precision in args.precisions:
        # All of a precision's servers (this tree and each --also-src) run at once and take turns.
        servers: dict[str, Server] = {}
        with tempfile.TemporaryDirectory(prefix="vv-bench-fa-") as tmp:
            try:
                for suffix, src in sources:
                    # Admission's first-audio guard refuses on a loaded box; one request at a time here.
                    env = {"VOXVAULT_MAX_FIRST_AUDIO_S": "30"}
                    if precision != "default":
                        env["VOXVAULT_KOKORO_PRECISION"] = precision
                    if src is not None:
                        env["PYTHONPATH"] = src
                    data = Path(tmp) / (suffix.lstrip("@") or "this")
                    data.mkdir()
                    servers[precision + suffix] = Server(data, key, env)
                for name, server in servers.items():
                    server.wait_ready()
                    print(f"{name}: server ready", flush=True)
                urls = {name: server.url for name, server in servers.items()}
                raws.update(
                    asyncio.run(
                        measure(
                            urls,
                            key,
                            args.repeats,
                            args.settle,
                            tuple(args.routes),
                            args.barge_repeats,
                            args.whole_repeats,
                        )
                    )
                )
            finally:
                for server in servers.values():
                    server.stop()
    print("baseline (stock onnxruntime, whole opening)", flush=True)
    baseline = {} if args.no_baseline else baseline_times(list(OPENERS), max(1, args.repeats))
    for precision, raw in raws.items():
        results[precision] = summarise(raw, baseline)
        print(precision, json.dumps(results[precision]), flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "duration_s": round(time.perf_counter() - t_start, 1),
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "openers": [
            {"text": t, "words_before_comma": words_before_comma(t), "bucket": bucket(t)} for t in OPENERS
        ],
        "baseline_s": {t: round(v, 4) for t, v in baseline.items()},
        "baseline_median_ms": round(statistics.median(baseline.values()) * 1000) if baseline else None,
        "results": results,
        "routes": args.routes,
        "raw_s": {
            p: {r: {t: [round(x, 4) for x in ts] for t, ts in per.items()} for r, per in v["samples"].items()}
            for p, v in raws.items()
        },
        "barge_in_raw_s": {
            p: {"after_drop": v["barge_in_okay_s"], "idle": v["idle_okay_s"]} for p, v in raws.items()
        },
        "whole_rtf_raw": {p: [round(x, 3) for x in v["whole_rtf"]] for p, v in raws.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.doc is not None:
        replace_block(args.doc, markdown(report), DOC_BEGIN, DOC_END)
        print(f"updated {args.doc}")


if __name__ == "__main__":
    sys.exit(main())
