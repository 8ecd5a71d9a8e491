"""Where batch items are synthesised: a thread pool in this process, or a pool of Ray actors.

Both take the same job and hand back ``concurrent.futures.Future`` objects, so the runner (the driver)
is one loop whatever runs the model. The driver alone writes the database; workers only need the model
cache and write access to the output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from voxvault.config import Settings
from voxvault.errors import VoxError
from voxvault.jobs.sinks import Sink, open_sink_for
from voxvault.jobs.spec import BatchItem
from voxvault.jobs.worker import BatchWorker, PrepareResult, RenderResult, WorkerOptions

if TYPE_CHECKING:  # jobs take a VoxVault, never import it: service.py is the composition root
    from voxvault.service import VoxVault

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    name: str
    workers: int

    def start(self, vv: VoxVault, sink: Sink, options: WorkerOptions) -> None:
        """Bring the workers up (models loaded) before the first item is sent."""
        ...

    def prepare(self, item: BatchItem) -> Future[PrepareResult]: ...

    def render(self, item_id: str, watermark_id: int) -> Future[RenderResult]:
        """Render an item this executor prepared (on the same worker that prepared it)."""
        ...

    def discard(self, item_id: str) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """A thread pool sharing this process's engines (ONNX Runtime releases the GIL while it computes)."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise VoxError("invalid_workers", "workers must be at least 1")
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._worker: BatchWorker | None = None

    def start(self, vv: VoxVault, sink: Sink, options: WorkerOptions) -> None:
        self._worker = BatchWorker(vv, sink, options)
        self._worker.warm_up()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="voxvault-batch")

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        assert self._pool is not None, "start() the executor first"
        return self._pool.submit(fn, *args)

    def prepare(self, item: BatchItem) -> Future[PrepareResult]:
        assert self._worker is not None
        return self._submit(self._worker.prepare, item)

    def render(self, item_id: str, watermark_id: int) -> Future[RenderResult]:
        assert self._worker is not None
        return self._submit(self._worker.render, item_id, watermark_id)

    def discard(self, item_id: str) -> None:
        if self._worker is not None:
            self._worker.discard(item_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayWorkerActor:
    """One Ray actor: its own ``VoxVault`` (engines loaded once) and its own handle on the output."""

    def __init__(
        self, service: type[VoxVault], settings: dict[str, Any], sink_url: str, options: WorkerOptions
    ) -> None:
        logging.basicConfig(level=logging.WARNING)
        vv = service(Settings(**settings))
        sink = open_sink_for(vv, sink_url)
        self.worker = BatchWorker(vv, sink, options)
        self.worker.warm_up()

    def ready(self) -> int:
        return os.getpid()

    def prepare(self, item: BatchItem) -> PrepareResult:
        return self.worker.prepare(item)

    def render(self, item_id: str, watermark_id: int) -> RenderResult:
        return self.worker.render(item_id, watermark_id)

    def discard(self, item_id: str) -> None:
        self.worker.discard(item_id)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VoxError(
            "missing_dependency", "the Ray executor needs Ray: pip install 'voxvault[ray]'", 500
        ) from None
    return ray


class RayExecutor:
    """A pool of Ray actors on a cluster (``address``) or on a Ray instance started here (no address).

    Every worker must reach the same output (a shared folder, or an S3 bucket on a real cluster) and the
    same model cache path. Items go to the actor with the fewest items in flight; an item's ``render``
    goes to the actor that prepared it.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 2,
        address: str | None = None,
        cpus_per_worker: float = 1.0,
        start_timeout_s: float = 600.0,
    ) -> None:
        if workers < 1:
            raise VoxError("invalid_workers", "workers must be at least 1")
        self.workers = workers
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.start_timeout_s = start_timeout_s
        self._ray: Any = None
        self._actors: list[Any] = []
        self._inflight: list[int] = []
        self._owner: dict[str, int] = {}
        self._lock = threading.Lock()
        self._started_ray = False

    def start(self, vv: VoxVault, sink: Sink, options: WorkerOptions) -> None:
        ray = self._ray = _import_ray()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline clusters: no usage report attempts
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if self.address:
                kwargs["address"] = self.address
            else:
                kwargs.update(
                    num_cpus=max(1, round(self.workers * self.cpus_per_worker)), include_dashboard=False
                )
                # A cluster started here gets Ray's default authentication (token mode), and Ray logs a
                # warning saying so on every run: nothing for the user to act on, so it is not shown. (Setting
                # RAY_AUTH_MODE=token ourselves instead made Ray's GCS abort: no token file yet.)
                # RAY_AUTH_MODE=disabled|token in the environment still decides.
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
                    logging.ERROR
                )
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise VoxError(
                    "ray_unreachable", f"cannot connect to the Ray cluster at {self.address}: {exc}", 503
                ) from None
            self._started_ray = True
        settings = vv.settings.model_dump()
        settings.update(
            data_dir=str(vv.settings.data_dir.resolve()),
            cache_dir=str(vv.settings.resolved_cache_dir),
            threads=vv.settings.threads or max(1, int(self.cpus_per_worker)),
        )
        actor_cls = ray.remote(num_cpus=self.cpus_per_worker, max_restarts=1)(self.actor_class())
        job_options = self.actor_options(options)
        # the service class travels by reference (Ray pickles it as an import), so jobs never import it
        self._actors = [
            actor_cls.remote(type(vv), settings, sink.url, job_options) for _ in range(self.workers)
        ]
        self._inflight = [0] * self.workers
        try:
            pids = ray.get([a.ready.remote() for a in self._actors], timeout=self.start_timeout_s)
        except Exception as exc:
            self.close()
            raise VoxError(
                "ray_workers_failed", f"Ray workers did not start: {type(exc).__name__}: {exc}", 503
            ) from None
        log.info("ray executor: %d actors ready (pids %s)", len(pids), pids)

    def actor_class(self) -> type:
        """The actor each worker is (a transcription batch has its own)."""
        return RayWorkerActor

    def actor_options(self, options: WorkerOptions) -> Any:
        """What each actor is built with beside the settings and the output."""
        return options

    def _pick(self) -> int:
        """The actor with the fewest items in flight, counted as taken (call under the lock)."""
        index = min(range(len(self._actors)), key=self._inflight.__getitem__)
        self._inflight[index] += 1
        return index

    def _track(self, index: int, ref: Any) -> Future[Any]:
        future: Future[Any] = ref.future()

        def _done(_: Future[Any]) -> None:
            with self._lock:
                self._inflight[index] -= 1

        future.add_done_callback(_done)
        return future

    def prepare(self, item: BatchItem) -> Future[PrepareResult]:
        with self._lock:
            index = self._pick()
            self._owner[item.id] = index
        return self._track(index, self._actors[index].prepare.remote(item))

    def render(self, item_id: str, watermark_id: int) -> Future[RenderResult]:
        with self._lock:
            index = self._owner.pop(item_id)
            self._inflight[index] += 1
        return self._track(index, self._actors[index].render.remote(item_id, watermark_id))

    def discard(self, item_id: str) -> None:
        with self._lock:
            index = self._owner.pop(item_id, None)
        if index is not None:
            self._actors[index].discard.remote(item_id)

    def close(self) -> None:
        if self._ray is None:
            return
        for actor in self._actors:
            with contextlib.suppress(Exception):  # already gone
                self._ray.kill(actor)
        self._actors = []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False


def make_executor(kind: str, *, workers: int, address: str | None = None) -> Executor:
    if kind == "local":
        if address:
            raise VoxError("invalid_executor", "--address only applies to the Ray executor")
        return LocalExecutor(workers)
    if kind == "ray":
        return RayExecutor(workers, address)
    raise VoxError("invalid_executor", f"executor {kind!r} is not one of {', '.join(EXECUTORS)}")
