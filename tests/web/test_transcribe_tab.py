"""The console's Transcribe tab in headless Chromium: an uploaded two-speaker file, then the microphone.

Real speech (the shared test voices), real Whisper and diarizer behind the live server. The upload is
James then Karen in one file: the page must show two speakers, a timeline whose bars follow the turns, and
James's sentence on the first speaker's line. Then Chromium's fake microphone says Andrew's clip, the page
records it (MediaRecorder) and transcribes it without speaker labels. Screenshots go to test-output/web/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import SPEAKERS, needs_testdata
from tests.web.conftest import Console, FakeMicrophone

from voxvault.audio.io import decode, encode

pytestmark = [pytest.mark.slow, needs_testdata]

TRANSCRIBE_TIMEOUT_MS = 240_000


def _voice(name: str, rate: int = 16000) -> np.ndarray:
    return decode(SPEAKERS / f"{name}.wav", max_bytes=10_000_000, max_seconds=60, target_sr=rate).samples


@pytest.fixture(scope="module")
def page(browser: Any, live_server: str, vv: Any, screenshots: Path) -> Iterator[tuple[Any, Console]]:
    org_id, project_id = vv.keys.create_org_project("web transcribe tests")
    key = str(vv.keys.create(org_id=org_id, project_id=project_id, scopes=["admin"], name="web").secret)
    context = browser.new_context(base_url=live_server, viewport={"width": 1100, "height": 900})
    context.grant_permissions(["microphone"], origin=live_server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = Console()
    console.attach(page)
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#tabs").wait_for(state="visible")
    page.locator('#tabs [data-tab="transcribe"]').click()
    page.locator("#transcribe").wait_for(state="visible")
    yield page, console
    context.close()


def test_an_uploaded_conversation_shows_speakers_and_a_timeline(
    page: tuple[Any, Console], tmp_path: Path, screenshots: Path
) -> None:
    tab, console = page
    two = np.concatenate([_voice("en_james"), np.zeros(8000, np.float32), _voice("en_karen")])
    path = tmp_path / "conversation.wav"
    path.write_bytes(encode(two, 16000, "wav"))
    tab.locator("#transcribe-file").set_input_files(str(path))
    assert "conversation.wav" in tab.locator("#transcribe-file-name").inner_text()
    tab.locator("#transcribe-go").click()
    result = tab.locator("#transcribe-result")
    result.wait_for(state="visible", timeout=TRANSCRIBE_TIMEOUT_MS)
    tab.screenshot(path=str(screenshots / "transcribe-upload.png"), full_page=True)
    assert result.get_attribute("data-speakers") == "2"
    assert tab.locator("#transcribe-legend li").all_inner_texts() == ["Speaker 1", "Speaker 2"]
    bars = tab.locator("#transcribe-timeline .bar")
    assert bars.count() >= 2
    first, last = bars.first, bars.last
    assert first.get_attribute("data-speaker") != last.get_attribute("data-speaker")
    assert float(first.get_attribute("data-start") or 99) < 1.0  # James speaks first...
    assert float(last.get_attribute("data-end") or 0) > 8.0  # ...and Karen last
    left = tab.evaluate("() => document.querySelector('#transcribe-timeline .bar:last-child').style.left")
    assert left.endswith("%") and 40 < float(left[:-1]) < 100  # placed by time
    lines = tab.locator("#transcribe-lines .line")
    assert "colorado" in lines.first.inner_text().lower()
    assert lines.first.locator(".who").inner_text() == "Speaker 1"
    assert "Speaker 2" in lines.last.inner_text()
    assert console.csp_violations() == [] and console.uncaught() == []


def test_a_recording_from_the_microphone_is_transcribed(
    page: tuple[Any, Console], microphone: FakeMicrophone, screenshots: Path
) -> None:
    tab, console = page
    length = microphone.say(_voice("en_andrew", 24000), 24000, lead_s=0.3, tail_s=1.0)
    tab.get_by_role("button", name="Record from the microphone").click()
    tab.locator("#transcribe-status[data-state=recording]").wait_for()
    tab.wait_for_function("() => document.getElementById('transcribe-level').value > 0.05")
    tab.wait_for_timeout(int(length * 1000))
    tab.get_by_role("button", name="Stop recording").click()
    tab.locator("#transcribe-status[data-state=recorded]").wait_for()
    assert "recording." in tab.locator("#transcribe-file-name").inner_text()
    tab.get_by_label("Label speakers").uncheck()
    tab.locator("#transcribe-go").click()
    tab.locator("#transcribe-status[data-state=done]").wait_for(timeout=TRANSCRIBE_TIMEOUT_MS)
    tab.screenshot(path=str(screenshots / "transcribe-microphone.png"), full_page=True)
    assert "mosquito" in tab.locator("#transcribe-lines").inner_text().lower()
    assert tab.locator("#transcribe-timeline").is_hidden()
    assert tab.locator("#transcribe-lines .who").count() == 0
    assert console.csp_violations() == [] and console.uncaught() == []


def test_a_file_that_is_not_audio_is_explained(page: tuple[Any, Console], tmp_path: Path) -> None:
    tab, _ = page
    path = tmp_path / "notes.wav"
    path.write_bytes(b"this is not audio " * 50)
    tab.locator("#transcribe-file").set_input_files(str(path))
    tab.locator("#transcribe-go").click()
    tab.locator("#transcribe-status[data-state=error]").wait_for(timeout=60_000)
    assert "could not be read as audio" in tab.locator("#transcribe-status").inner_text()
    assert tab.locator("#transcribe-result").is_hidden()
