"""Where the slow creep of bench/memory.py sits (issue 28): N mixed requests one at a time against the server
of bench/mallinfo_serve.py, with glibc's mallinfo2 (in use, free inside its arenas) and RSS every STEP
requests: in-use growth is memory something still holds, free growth is malloc keeping what was given back.

    python bench/memory_creep.py LABEL OUT_DIR [N] [STEP]     # OUT_DIR/LABEL.json
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
n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
step = int(sys.argv[4]) if len(sys.argv) > 4 else 50
mi = out / f"{label}.mi.jsonl"
mi.unlink(missing_ok=True)
real = subprocess.Popen


def popen(cmd, **kw):
    return real([sys.executable, str(Path(__file__).resolve().parent / "mallinfo_serve.py"), *cmd[4:]], **kw)


kinds = ["short", "long", "streamed", "cancelled", "bad_text", "bad_format"]


async def main(s, key):
    h = {"xi-api-key": key, "authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=300, headers=h) as c:
        for i in range(n):
            await one(c, s.url, kinds[i % 6])
            await asyncio.sleep(0.05)
            if (i + 1) % step == 0:
                os.kill(s.proc.pid, signal.SIGUSR1)
                done = (i + 1) // step
                for _ in range(600):  # a tracemalloc snapshot (M28_TRACE) takes seconds
                    await asyncio.sleep(0.1)
                    if mi.exists() and len(mi.read_text().splitlines()) >= done:
                        break
                print(i + 1, mi.read_text().splitlines()[-1], flush=True)


key = f"vv_bench_{secrets.token_urlsafe(24)}"
with tempfile.TemporaryDirectory(prefix="vv-creep-") as tmp:
    stream.subprocess.Popen = popen
    s = Server(Path(tmp), key, {"VOXVAULT_MAX_FIRST_AUDIO_S": "60", "M28_MI": str(mi)})
    stream.subprocess.Popen = real
    try:
        s.wait_ready()
        t0 = time.time()
        asyncio.run(main(s, key))
    finally:
        s.stop()
lines = [json.loads(x) for x in mi.read_text().splitlines()]
(out / f"{label}.json").write_text(
    json.dumps(
        {"label": label, "step": step, "mallinfo": lines, "secs": time.time() - t0, "load": os.getloadavg()},
        indent=1,
    )
)
