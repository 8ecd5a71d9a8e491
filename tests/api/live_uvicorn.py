"""A live uvicorn server for tests that need real sockets: disconnects, slow readers, task counts."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


class LiveServer:
    """uvicorn in a thread with a handle on its event loop (to count the server's asyncio tasks)."""

    def __init__(self, app, send_buffer: int | None = None) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        self.sock = socket.socket()
        if send_buffer is not None:  # connections inherit it; fixed, it stops the kernel growing it to 4 MB
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.app = app
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.loop: asyncio.AbstractEventLoop | None = None

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        self.thread = threading.Thread(target=lambda: asyncio.run(main()), name="test-uvicorn", daemon=True)
        self.thread.start()
        assert wait_until(lambda: self.server.started, 30), "uvicorn did not start"

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def other_threads() -> set[str]:
    """Threads other than the worker pools (whose idle workers linger by design)."""
    return {
        t.name for t in threading.enumerate() if not t.name.startswith(("AnyIO worker", "ThreadPoolExecutor"))
    }


def audit_actions_since(vv, seq: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["action"] for e in vv.audit.entries(since_seq=seq)]
