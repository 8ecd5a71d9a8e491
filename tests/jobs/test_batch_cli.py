"""``voxvault batch run`` as a user runs it: killed with SIGKILL mid-run then resumed, and on a Ray cluster.

Both start real processes (the CLI; a Ray head node) with a temporary data folder and the shared model
cache, and stop everything they started by process group. The kill -9 resume is the batch feature's
end-to-end path on Kokoro; the exit codes and the Ray executor speak with the fake engine (engines/fake.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import check_output, manifest_entries, tiny_rows, write_items

pytestmark = pytest.mark.slow

# Explicit, so a token another Ray run left in ~/.ray does not switch the test cluster to token auth.
# A SIGTERM'd `ray start --block` drains its node for 30 s before it stops (Ray 2.60's default); the test
# cluster has nothing to drain, so it stops at once (22 s of the suite's teardown before).
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}


def _env(data_dir: Path, model_cache: Path, tts: str = "kokoro") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXVAULT_")}
    env.update(VOXVAULT_DATA_DIR=str(data_dir), VOXVAULT_CACHE_DIR=str(model_cache), **RAY_ENV)
    env.update(VOXVAULT_TTS_ENGINE=tts)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "voxvault", "batch", "run", *args, "--quiet"]


@pytest.fixture(scope="module")
def model_ready(vv: Any) -> None:
    """Join/convert the weights once here, so the subprocesses only load them."""
    vv.engines.tts()


def _lines(out: Path) -> int:
    try:
        return (out / "manifest.jsonl").read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_mid_run_then_the_same_command_finishes_the_job(
    tmp_path: Path, model_cache: Path, model_ready: None
) -> None:
    rows = tiny_rows(12)
    items = write_items(tmp_path / "items.jsonl", rows)
    out = tmp_path / "out"
    env = _env(tmp_path / "data", model_cache)
    command = _cli(str(items), "--out", str(out), "--workers", "2")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while _lines(out) < 3:
            assert proc.poll() is None, f"finished before it could be killed: {proc.stdout.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no progress within 240 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        # Left unreaped until the rerun is done: a zombie answers signal 0 like a live process, which
        # is what kept a killed job from resuming on the same host (issue 29, finding 4).
        deadline = time.monotonic() + 30
        while Path(f"/proc/{proc.pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed runner did not die"
            time.sleep(0.01)
        before = {e["id"]: e for e in manifest_entries(out)}
        assert 3 <= len(before) < 12, "the kill should land mid-run"
        rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(before)} skipped" in rerun.stdout
    after = {e["id"]: e for e in check_output(out, {r["id"] for r in rows})}
    for item_id, entry in before.items():
        assert after[item_id] == entry, f"{item_id} was made again after it was finished"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "12 skipped" in again.stdout
    assert len(manifest_entries(out)) == 12


def test_failed_items_make_the_command_exit_1_and_are_listed(tmp_path: Path, model_cache: Path) -> None:
    items = write_items(
        tmp_path / "items.jsonl",
        [{"id": "ok", "text": "Fine."}, {"id": "x", "text": "No.", "voice": "nobody"}],
    )
    run = subprocess.run(
        _cli(str(items), "--out", str(tmp_path / "out")),
        env=_env(tmp_path / "d", model_cache, tts="fake"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "voice_not_found" in run.stderr
    bad = write_items(tmp_path / "bad.jsonl", [{"id": "a"}])
    refused = subprocess.run(
        _cli(str(bad), "--out", str(tmp_path / "o2")),
        env=_env(tmp_path / "d", model_cache, tts="fake"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "line 1: [missing_field]" in refused.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A one-node Ray cluster (2 CPUs) in its own process group; yields (address, its temp folder)."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = Path(
        tempfile.mkdtemp(prefix="vvray-", dir="/tmp")
    )  # short: Ray's socket paths have a length limit
    proc = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--object-store-memory=100000000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, **RAY_ENV},
    )
    started = threading.Event()
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Ray runtime started" in line:
                started.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not started.wait(120):
            pytest.fail("ray start did not come up in 120 s:\n" + "".join(output[-30:]))
        yield f"127.0.0.1:{port}", temp
    finally:
        # SIGTERM lets Ray's processes shut down; whatever of the group is left after that is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_batch_on_a_local_ray_cluster(
    tmp_path: Path, model_cache: Path, ray_cluster: tuple[str, Path]
) -> None:
    address, ray_temp = ray_cluster
    rows = tiny_rows(6, prefix="ray")
    items = write_items(tmp_path / "items.jsonl", rows)
    out = tmp_path / "out"
    env = _env(tmp_path / "data", model_cache, tts="fake")
    command = _cli(str(items), "--out", str(out), "--executor", "ray", "--address", address, "--workers", "2")
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, run.stdout + run.stderr
    check_output(out, {r["id"] for r in rows})
    # The clips were made by actors on the cluster, not by the driver.
    logs = ray_temp / "session_latest" / "logs"
    assert any("RayWorkerActor" in p.read_text(errors="replace") for p in logs.glob("worker-*.out")), sorted(
        p.name for p in logs.iterdir()
    )
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "6 skipped" in again.stdout
