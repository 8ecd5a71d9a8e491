"""Speak-only server memory over many mixed requests: does RSS stay under 1 GB, does it grow? (issue 28)

``voxvault serve`` in a subprocess (``bench/stream.py``'s ``Server``) gets ``--requests`` requests, one at
a time, cycling through: a short answer, a long one (read to the end), an ElevenLabs stream (read to the
end), a stream dropped at its first audio (a barge-in), and bad input (empty text, an unknown format:
400s). No cloning, no transcription: the speak-only server. The server's RSS (``/proc/<pid>/status``
VmRSS) is read after every request; every 50 requests its RSS is also split by mapping
(``/proc/<pid>/smaps``: the brk heap, other anonymous memory such as malloc's thread arenas and large
mmapped blocks, and file-backed pages), which says where growth sits.

Reported: RSS after the first tenth of the requests and at the end, the growth between them, the peak;
the curve as a PNG.

    python bench/memory.py --requests 200 --out bench/results/memory.json --plot bench/results/memory.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from stream import Server, machine

ROOT = Path(__file__).resolve().parents[1]
SHORT = "Okay, done."
LONG = (
    "Sure, I can help with that. Your order shipped this morning and should arrive on Thursday. "
    "Is there anything else you would like to know?"
)


async def one(client: httpx.AsyncClient, url: str, kind: str) -> int:
    speech = f"{url}/v1/audio/speech"
    if kind == "short":
        r = await client.post(speech, json={"model": "tts-1", "voice": "alpha", "input": SHORT})
        return r.status_code
    if kind == "long":
        r = await client.post(
            speech, json={"model": "tts-1", "voice": "alpha", "input": LONG, "response_format": "pcm"}
        )
        return r.status_code
    if kind in ("streamed", "cancelled"):
        async with client.stream(
            "POST", f"{url}/v1/text-to-speech/alpha/stream?output_format=mp3_22050_32", json={"text": LONG}
        ) as r:
            async for chunk in r.aiter_raw():
                if chunk and kind == "cancelled":
                    break  # hang up at first audio
            return r.status_code
    if kind == "bad_text":
        return (await client.post(speech, json={"model": "tts-1", "voice": "alpha", "input": ""})).status_code
    r = await client.post(
        speech, json={"model": "tts-1", "voice": "alpha", "input": SHORT, "response_format": "xyz"}
    )
    return r.status_code


def rss_by_mapping(pid: int) -> dict[str, float]:
    """The process's resident memory in MB by kind of mapping, from ``/proc/<pid>/smaps``."""
    out = {"heap": 0.0, "anon": 0.0, "file": 0.0}
    kind = "anon"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        head = line.split(maxsplit=6)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else ""
            kind = "heap" if name == "[heap]" else ("file" if name.startswith("/") else "anon")
        elif line.startswith("Rss:"):
            out[kind] += int(line.split()[1]) / 1024
    return {k: round(v, 1) for k, v in out.items()}


async def run(
    server: Server, key: str, n: int, deadline: float = float("inf")
) -> tuple[list[float], dict[str, int]]:
    """RSS after each request; stops early (fewer than ``n``) once ``time.perf_counter()`` passes
    ``deadline``."""
    kinds = ["short", "long", "streamed", "cancelled", "bad_text", "bad_format"]
    curve: list[float] = []
    statuses: dict[str, int] = {}
    by_mapping: dict[int, dict[str, float]] = {}
    headers = {"xi-api-key": key, "authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=120, headers=headers) as client:
        for i in range(n):
            if time.perf_counter() > deadline:
                print(f"  stopped at the time limit after {i} requests", flush=True)
                break
            kind = kinds[i % len(kinds)]
            try:
                status: int | str = await one(client, server.url, kind)
            except httpx.TimeoutException:  # a loaded box: counted, and the run goes on
                status = "timeout"
            statuses[f"{kind}:{status}"] = statuses.get(f"{kind}:{status}", 0) + 1
            await asyncio.sleep(0.05)
            curve.append(server.rss_mb())
            if (i + 1) % 50 == 0:
                by_mapping[i + 1] = rss_by_mapping(server.proc.pid)
                print(f"  {i + 1}/{n}: {curve[-1]:.0f} MB {by_mapping[i + 1]}", flush=True)
    return curve, statuses, by_mapping


def plot(report: dict[str, Any], path: Path) -> None:
    """The RSS curve, the 1 GB line, and the +-5 % band around the RSS after request 100."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = report["curve_mb"]
    at_100 = report["rss_after_100_mb"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(range(1, len(curve) + 1), curve, label="server RSS")
    ax.axhspan(at_100 * 0.95, at_100 * 1.05, color="green", alpha=0.15, label="RSS at request 100 +-5 %")
    ax.axhline(1024, color="red", linestyle="--", linewidth=1, label="1 GB")
    ax.set_xlabel("requests (short, long, streamed, cancelled, bad input)")
    ax.set_ylabel("server RSS (MB)")
    ax.set_ylim(0, max(1100, max(curve) * 1.1))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" / "memory.png")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after this long (a loaded box); the report says how many requests ran",
    )
    parser.add_argument("--replot", type=Path, default=None, help="only draw --plot from this report")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text()), args.plot)
        return
    t0 = time.perf_counter()
    info = machine()
    key = f"vv_bench_{secrets.token_urlsafe(24)}"
    with tempfile.TemporaryDirectory(prefix="vv-bench-mem-") as tmp:
        server = Server(Path(tmp), key, {"VOXVAULT_MAX_FIRST_AUDIO_S": "30"})
        try:
            server.wait_ready()
            ready_mb = server.rss_mb()
            deadline = t0 + args.max_minutes * 60 if args.max_minutes else float("inf")
            curve, statuses, by_mapping = asyncio.run(run(server, key, args.requests, deadline))
        finally:
            server.stop()
    tenth = curve[max(0, len(curve) // 10 - 1)]
    at_100 = curve[min(100, len(curve)) - 1]  # the reference: RSS after the first 100 requests
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": info,
        "voxvault_threads": os.environ.get("VOXVAULT_THREADS", "unset (the server default: all cores)"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "requests": len(curve),
        "requests_asked": args.requests,
        "statuses": statuses,
        "rss_ready_mb": round(ready_mb),
        "rss_after_first_tenth_mb": round(tenth),
        "rss_end_mb": round(curve[-1]),
        "rss_peak_mb": round(max(curve)),
        "growth_after_first_tenth": round(curve[-1] / tenth - 1, 4),
        "rss_after_100_mb": round(at_100),
        "growth_after_100": round(curve[-1] / at_100 - 1, 4),
        "rss_by_mapping_mb": by_mapping,
        "curve_mb": [round(x, 1) for x in curve],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.plot)
    print(json.dumps({k: v for k, v in report.items() if k != "curve_mb"}, indent=2))


if __name__ == "__main__":
    main()
