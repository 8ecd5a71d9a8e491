"""Where bench/memory.py's steps come from (issue 28): the same server and request kinds, 18 one at a time,
then 6 bursts of 4 at once, then 18 one at a time; the server (bench/mallinfo_serve.py) writes glibc's
mallinfo2 (in use, free inside its arenas) and its RSS after each phase.

    python bench/memory_bursts.py LABEL OUT_DIR     # OUT_DIR/LABEL.json
"""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
import stream
from memory import one
from stream import Server

label, out = sys.argv[1], Path(sys.argv[2])
mi = out / f"{label}.mi.jsonl"
mi.unlink(missing_ok=True)
real = subprocess.Popen


def popen(cmd, **kw):
    return real([sys.executable, str(Path(__file__).resolve().parent / "mallinfo_serve.py"), *cmd[4:]], **kw)


kinds = ["short", "long", "streamed", "cancelled", "bad_text", "bad_format"]


async def main(s, key):
    h = {"xi-api-key": key, "authorization": f"Bearer {key}"}
    log = []

    async def mark(phase):
        await asyncio.sleep(3.0)  # the trimmer's pause is 2 s
        os.kill(s.proc.pid, signal.SIGUSR1)
        await asyncio.sleep(0.5)
        log.append((phase, round(s.rss_mb(), 1)))
        print(phase, log[-1], flush=True)

    async with httpx.AsyncClient(timeout=300, headers=h) as c:
        for i in range(18):
            await one(c, s.url, kinds[i % 6])
        await mark("seq18")
        for _ in range(6):
            await asyncio.gather(*(one(c, s.url, k) for k in ("long", "streamed", "cancelled", "short")))
        await mark("bursts6")
        for i in range(18):
            await one(c, s.url, kinds[i % 6])
        await mark("seq18b")
    return log


key = f"vv_bench_{secrets.token_urlsafe(24)}"
with tempfile.TemporaryDirectory(prefix="vv-m28b-") as tmp:
    stream.subprocess.Popen = popen
    s = Server(Path(tmp), key, {"VOXVAULT_MAX_FIRST_AUDIO_S": "60", "M28_MI": str(mi)})
    stream.subprocess.Popen = real
    try:
        s.wait_ready()
        t0 = time.time()
        log = asyncio.run(main(s, key))
    finally:
        s.stop()
lines = [json.loads(x) for x in mi.read_text().splitlines()]
(out / f"{label}.json").write_text(
    json.dumps(
        {"label": label, "phases": log, "mallinfo": lines, "secs": time.time() - t0, "load": os.getloadavg()},
        indent=1,
    )
)
print(label, json.dumps(lines))
