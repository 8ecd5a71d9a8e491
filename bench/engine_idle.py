"""Server memory before and after an idle Whisper is unloaded (issue 26, item 4).

``voxvault serve`` (``bench/stream.py``'s ``Server``) with ``VOXVAULT_ENGINE_IDLE_TTL_S`` short: RSS once
ready (Kokoro warmed up), after transcribing one clip with Whisper (``/v1/audio/transcriptions``, the model
loaded on first use), and once ``/metrics`` no longer lists the transcriber (unloaded by the reaper); then a
second transcription (reloaded, same text). The default TTS stays loaded throughout.

    python bench/engine_idle.py --ttl 10 --out bench/results/engine_idle.json
"""

from __future__ import annotations

import argparse
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
CLIP = ROOT.parent / "shared" / "testdata" / "speakers" / "en_james.wav"


def transcribe(server: Server, key: str, model: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    r = httpx.post(
        f"{server.url}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": (CLIP.name, CLIP.read_bytes(), "audio/wav")},
        data={"model": model},
        timeout=600,
    )
    r.raise_for_status()
    return str(r.json()["text"]), time.perf_counter() - t0


def loaded_engines(server: Server) -> list[str]:
    body = httpx.get(f"{server.url}/metrics", timeout=30).text
    return [
        line.split("{", 1)[1].split("}", 1)[0]
        for line in body.splitlines()
        if line.startswith("voxvault_engine_loaded{")
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ttl", type=float, default=10.0, help="VOXVAULT_ENGINE_IDLE_TTL_S for the server")
    ap.add_argument("--model", default="base", help="Whisper model (base or tiny.en)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine_idle.json")
    args = ap.parse_args()

    key = "vv_" + secrets.token_urlsafe(24)
    result: dict[str, Any] = {"machine": machine(), "ttl_s": args.ttl, "model": args.model}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), key, {"VOXVAULT_ENGINE_IDLE_TTL_S": str(args.ttl)})
        try:
            server.wait_ready()
            time.sleep(2)
            result["rss_ready_mb"] = round(server.rss_mb(), 1)
            result["loaded_ready"] = loaded_engines(server)
            text, took = transcribe(server, key, args.model)
            result["first_transcription_s"] = round(took, 2)
            result["rss_after_transcription_mb"] = round(server.rss_mb(), 1)
            result["loaded_after_transcription"] = loaded_engines(server)
            t0 = time.monotonic()
            while any("transcriber" in e for e in loaded_engines(server)):
                if time.monotonic() - t0 > args.ttl * 3 + 60:
                    raise RuntimeError("the transcriber was not unloaded")
                time.sleep(0.5)
            result["unloaded_after_s"] = round(time.monotonic() - t0, 1)
            time.sleep(1)
            result["rss_after_unload_mb"] = round(server.rss_mb(), 1)
            result["loaded_after_unload"] = loaded_engines(server)
            again, took = transcribe(server, key, args.model)
            result["reloaded_transcription_s"] = round(took, 2)
            result["same_text_after_reload"] = again == text
            result["rss_after_reload_mb"] = round(server.rss_mb(), 1)
            server.check()
        finally:
            server.stop()
    result["freed_mb"] = round(result["rss_after_transcription_mb"] - result["rss_after_unload_mb"], 1)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
