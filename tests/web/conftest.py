"""Browser fixtures: Debian's Chromium driven by Playwright's Python package, with a fake microphone.

The fixtures install what is missing themselves: the ``chromium`` Debian package (``apt-get`` as root)
and the ``playwright`` Python package (pip, into this interpreter). Playwright never downloads a browser
here: it drives ``/usr/bin/chromium`` through ``executable_path``. Chromium reads the fake microphone's
WAV file each time the page opens the microphone, so a test can write what the "speaker" says (a script
only known at run time) after the browser has started. Screenshots go to ``test-output/web/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "test-output" / "web"
INSTALL_TIMEOUT_S = 1200


def _ensure_chromium() -> str:
    """The Chromium binary, installed from Debian's packages when missing (skip only if that fails)."""
    found = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if found:
        return found
    if not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and this system has no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed; installing it needs root (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            pytest.skip(f"could not install chromium ({' '.join(cmd)} failed: {' / '.join(tail)})")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get installed chromium but no 'chromium' command is on PATH")
    return found


def _ensure_playwright() -> Any:
    try:
        from playwright import sync_api
    except ImportError:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "playwright"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if done.returncode != 0:
            pytest.skip("the playwright Python package is missing and pip could not install it")
        from playwright import sync_api
    return sync_api


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """16-bit PCM mono WAV: what Chromium's fake audio capture reads."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    tmp.replace(path)  # the browser never sees a half-written file


class FakeMicrophone:
    """What the browser's microphone will say the next time the page opens it (played once, no loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.say(np.zeros(24_000, dtype=np.float32), 24_000)

    def say(self, samples: np.ndarray, rate: int, lead_s: float = 1.0, tail_s: float = 2.0) -> float:
        """Write the clip (with silence around it); returns the clip's length in seconds."""
        audio = np.concatenate(
            [np.zeros(int(lead_s * rate), np.float32), samples, np.zeros(int(tail_s * rate), np.float32)]
        )
        write_wav(self.path, audio, rate)
        return len(audio) / rate

    @property
    def chromium_arg(self) -> str:
        return f"--use-file-for-fake-audio-capture={self.path}%noloop"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="module")
def microphone(tmp_path_factory: pytest.TempPathFactory) -> FakeMicrophone:
    return FakeMicrophone(tmp_path_factory.mktemp("mic") / "microphone.wav")


@pytest.fixture(scope="session")
def playwright_api() -> Any:
    """``playwright.sync_api``, installed first when missing."""
    return _ensure_playwright()


@pytest.fixture(scope="module")
def browser(microphone: FakeMicrophone, playwright_api: Any) -> Iterator[Any]:
    executable = _ensure_chromium()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                microphone.chromium_arg,
            ],
        )
        yield browser
        browser.close()


class Console:
    """Console errors and CSP violations a page reported (a strict CSP must not break the page)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def csp_violations(self) -> list[str]:
        return [e for e in self.errors if "Content Security Policy" in e or "Refused to" in e]

    def uncaught(self) -> list[str]:
        return [e for e in self.errors if e.startswith("uncaught:")]
