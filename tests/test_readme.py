"""README.md, run as written: every ``bash`` and ``python`` block against a live ``voxvault serve``.

The server is started the way the README says (``.venv/bin/voxvault serve``, on a free port, a fresh data
folder) and the admin key is read from what it prints. Each block then runs in a scratch folder (holding a
``.venv`` link, so ``.venv/bin/...`` works as in a checkout), in README order, with two substitutions: the
placeholder key ``vv_…`` becomes the printed key and ``http://127.0.0.1:8000`` the server's address. A
block must exit 0, and every audio file it names must be real audio. A block is only left out with a
``<!-- readme-test: skip (why) -->`` line right above it, and that reason is checked to be there.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import MODEL_CACHE, REPO

pytestmark = pytest.mark.slow

README = REPO / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<directive>[^\n]*?) -->\n)?^```(?P<lang>bash|python)\n(?P<code>.*?)^```",
    re.S | re.M,
)
AUDIO_FILE = re.compile(r"[\w.-]+\.(?:mp3|wav|ogg|opus|flac|aac)\b")
KEY = re.compile(r"vv_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")
BLOCK_TIMEOUT_S = 300
START_TIMEOUT_S = 300


@dataclass(frozen=True)
class Example:
    lang: str
    code: str
    line: int
    skip: str | None  # the reason given in the README, or None: the block runs

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.lang}"


def examples() -> list[Example]:
    text = README.read_text()
    found = []
    for m in BLOCK.finditer(text):
        directive = m.group("directive")
        skip = None
        if directive is not None:
            assert directive.startswith("skip (") and directive.endswith(")"), directive
            skip = directive[len("skip (") : -1]
        found.append(Example(m.group("lang"), m.group("code"), text[: m.start("code")].count("\n") + 1, skip))
    return found


RUNNABLE = [e for e in examples() if e.skip is None]


def test_the_readme_examples_are_found_and_every_skip_says_why() -> None:
    found = examples()
    assert sum(e.lang == "bash" for e in RUNNABLE) >= 3 and sum(e.lang == "python" for e in RUNNABLE) >= 2
    for e in found:
        if e.skip is not None:
            assert len(e.skip) > 20, f"{e.id}: say why this block is not run"
    assert len(found) - len(RUNNABLE) <= 3, "most examples must run"


@dataclass(frozen=True)
class Server:
    url: str
    key: str
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _base_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOXVAULT_", "OPENAI_"))}
    env.update(VOXVAULT_DATA_DIR=str(data_dir), VOXVAULT_CACHE_DIR=str(MODEL_CACHE), COLUMNS="200")
    return env


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``voxvault serve`` as the README starts it, until its warm-up is done; the key it printed."""
    data_dir = tmp_path_factory.mktemp("readme-data")
    port = _free_port()
    command = [str(Path(sys.prefix) / "bin" / "voxvault"), "serve", "--port", str(port)]
    proc = subprocess.Popen(
        command,
        env=_base_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(url + "/readyz") != 200:
            assert proc.poll() is None, "voxvault serve stopped:\n" + "".join(output)
            assert time.monotonic() < deadline, "voxvault serve not ready:\n" + "".join(output)
            time.sleep(0.1)
        printed = "".join(output)
        key = KEY.search(printed)
        assert key is not None, f"no admin key printed:\n{printed}"
        yield Server(url, key.group(0), data_dir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder like a checkout's root for the examples: ``.venv`` is this interpreter's environment."""
    folder = tmp_path_factory.mktemp("readme-run")
    (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return folder


def _run(example: Example, server: Server, workdir: Path, key: str) -> subprocess.CompletedProcess[str]:
    code = example.code.replace("http://127.0.0.1:8000", server.url).replace("vv_…", key)
    env = _base_env(server.data_dir)
    env["VOXVAULT_API_KEY"] = key
    command = (
        ["bash", "-euo", "pipefail", "-c", code] if example.lang == "bash" else [sys.executable, "-c", code]
    )
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )


def _audio_seconds(path: Path) -> float:
    from voxvault.audio import decode

    audio = decode(path.read_bytes(), max_bytes=50 * 1024 * 1024, max_seconds=600)
    return len(audio.samples) / audio.sample_rate


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_readme_example_runs_as_written(example: Example, server: Server, workdir: Path) -> None:
    started = time.time()
    done = _run(example, server, workdir, server.key)
    assert done.returncode == 0, f"{example.id} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    made = [workdir / name for name in dict.fromkeys(AUDIO_FILE.findall(example.code))]
    for path in made:
        assert path.is_file() and path.stat().st_mtime >= started - 1, (
            f"{example.id} did not write {path.name}"
        )
        assert _audio_seconds(path) > 0.3, f"{path.name} is not audio"
    if len(made) > 1:
        assert len({p.read_bytes() for p in made}) == len(made), "each file holds its own speech"


def test_the_curl_example_saves_no_file_when_the_request_fails(server: Server, workdir: Path) -> None:
    curl = next(e for e in RUNNABLE if e.lang == "bash" and "curl" in e.code)
    target = workdir / "hello.mp3"
    target.unlink(missing_ok=True)
    done = _run(curl, server, workdir, "vv_00000000_" + "x" * 43)  # a key the server does not know
    assert done.returncode == 22, done.stderr  # curl -f: the 401 is an error
    assert not target.exists()  # and its JSON is not saved as hello.mp3
