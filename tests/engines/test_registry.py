"""The engine registry loads on first use and unloads idle engines (issue 26, item 4).

A fake clock drives the TTL, so no test waits for it; the real Whisper and CAM++ show that an unload
frees the model (its last reference goes) and that the next use loads it again and works.
"""

from __future__ import annotations

import gc
import threading
import time
import wave
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.conftest import SPEAKERS, needs_testdata

from voxvault.config import Settings
from voxvault.engines import registry as registry_module
from voxvault.engines.registry import EngineRegistry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEngine:
    """Stands for a model; counts how often it was built."""

    name = "fake"
    built = 0

    def __init__(self) -> None:
        FakeEngine.built += 1


@pytest.fixture()
def fake_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeEngine.built = 0
    monkeypatch.setitem(registry_module.FACTORIES, "transcriber", {"base": lambda s: FakeEngine()})
    monkeypatch.setitem(registry_module.FACTORIES, "tts", {"kokoro": lambda s: FakeEngine()})


def make(tmp_path: Path, clock: Clock | None = None, ttl: float = 300.0, **kw: Any) -> EngineRegistry:
    settings = Settings(data_dir=tmp_path, engine_idle_ttl_s=ttl, **kw)
    return EngineRegistry(settings, clock=clock or Clock())


@pytest.mark.usefixtures("fake_kinds")
def test_idle_engine_is_unloaded_after_the_ttl_and_loaded_again_on_next_use(tmp_path: Path) -> None:
    clock = Clock()
    reg = make(tmp_path, clock)
    first = reg.transcriber()
    assert FakeEngine.built == 1 and reg.transcriber() is first  # shared while loaded
    gone = weakref.ref(first)
    del first
    clock.now += 299
    assert reg.reap() == [] and reg.loaded("transcriber")
    clock.now += 1
    assert reg.reap() == ["transcriber:base"]
    assert not reg.loaded("transcriber") and gone() is None  # nobody held it: freed
    again = reg.transcriber()
    assert FakeEngine.built == 2 and reg.loaded("transcriber") and again.name == "fake"


@pytest.mark.usefixtures("fake_kinds")
def test_a_leased_engine_is_never_unloaded_and_idles_from_the_end_of_its_use(tmp_path: Path) -> None:
    clock = Clock()
    reg = make(tmp_path, clock)
    with reg.use("transcriber") as engine:
        clock.now += 10_000
        assert reg.reap() == []
        [state] = reg.status()
        assert (state.kind, state.name, state.in_use, state.idle_s) == ("transcriber", "base", 1, 0.0)
        with reg.use("transcriber") as same:  # a second user shares it
            assert same is engine and reg.status()[0].in_use == 2
        assert reg.reap() == []  # one user left
    del engine, same  # done with it
    clock.now += 299
    assert reg.reap() == [] and reg.status()[0].idle_s == 299
    clock.now += 1
    assert reg.reap() == ["transcriber:base"] and reg.status() == []


@pytest.mark.usefixtures("fake_kinds")
def test_the_default_tts_always_stays_and_ttl_zero_never_unloads(tmp_path: Path) -> None:
    clock = Clock()
    reg = make(tmp_path, clock)
    reg.tts()
    reg.transcriber()
    clock.now += 10**6
    assert reg.reap() == ["transcriber:base"]
    assert [s.pinned for s in reg.status()] == [True] and reg.loaded("tts")

    never = make(tmp_path, clock, ttl=0)
    never.transcriber()
    clock.now += 10**9
    assert never.reap() == [] and never.loaded("transcriber")


@pytest.mark.usefixtures("fake_kinds")
def test_an_engine_a_caller_still_holds_stays_until_it_lets_go(tmp_path: Path) -> None:
    clock = Clock()
    reg = make(tmp_path, clock)
    held = reg.transcriber()  # e.g. a long transcription that took it without a lease
    clock.now += 301
    assert reg.reap() == [] and reg.loaded("transcriber")  # dropping it would free nothing
    assert reg.status()[0].idle_s == 0
    assert reg.transcriber() is held and FakeEngine.built == 1
    gone = weakref.ref(held)
    del held
    clock.now += 299  # idle from when it was last seen held, not from when it was taken
    assert reg.reap() == []
    clock.now += 1
    assert reg.reap() == ["transcriber:base"] and gone() is None


@pytest.mark.usefixtures("fake_kinds")
def test_an_engine_another_engine_holds_goes_with_it_in_one_pass(tmp_path: Path) -> None:
    class Holder:
        def __init__(self, inner: object) -> None:
            self.inner = inner

    clock = Clock()
    reg = make(tmp_path, clock)
    reg._acquire("composite:x", lambda: Holder(reg.transcriber()), lease=False)
    clock.now += 301
    assert set(reg.reap()) == {"composite:x", "transcriber:base"}


@pytest.mark.usefixtures("fake_kinds")
def test_concurrent_first_uses_load_one_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(settings: Settings) -> FakeEngine:
        time.sleep(0.05)
        return FakeEngine()

    monkeypatch.setitem(registry_module.FACTORIES, "transcriber", {"base": slow})
    reg = make(tmp_path)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(reg.transcriber())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert FakeEngine.built == 1 and len({id(g) for g in got}) == 1


@pytest.mark.usefixtures("fake_kinds")
def test_the_reaper_thread_unloads_idle_engines_but_not_one_in_use(tmp_path: Path) -> None:
    reg = make(tmp_path, ttl=0.05, asr_model="base")
    reg._clock = time.monotonic  # the real clock: the thread's own timing is what is tested here
    reg.transcriber()
    reg.start_reaper()
    try:
        deadline = time.monotonic() + 5
        while reg.loaded("transcriber") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not reg.loaded("transcriber")
        with reg.use("transcriber"):
            time.sleep(0.3)  # six TTLs
            assert reg.loaded("transcriber")
    finally:
        reg.stop_reaper()


def test_unknown_kind_or_name_is_a_clear_error(tmp_path: Path) -> None:
    from voxvault.errors import VoxError

    reg = make(tmp_path)
    with pytest.raises(VoxError) as err:
        reg.transcriber("huge")
    assert err.value.code == "unknown_engine" and "tiny.en" in err.value.message
    with pytest.raises(VoxError), reg.use("nonsense"):
        pass


def _clip16k(name: str) -> np.ndarray:
    from voxvault.audio.io import resample

    with wave.open(str(SPEAKERS / f"en_{name}.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        rate = w.getframerate()
    return resample(pcm.astype(np.float32) / 32768.0, rate, 16_000)


@needs_testdata
def test_idle_whisper_is_freed_and_transcribes_again_after_reload(tmp_path: Path, model_cache: Path) -> None:
    clock = Clock()
    reg = make(tmp_path, clock, cache_dir=model_cache)
    audio = _clip16k("james")
    with reg.use("transcriber", "tiny.en") as whisper:
        assert "colorado" in whisper.transcribe(audio, 16_000).lower()
        gone = weakref.ref(whisper)
    del whisper
    clock.now += 300
    assert reg.reap() == ["transcriber:tiny.en"]
    gc.collect()
    assert gone() is None  # the model is no longer in memory
    with reg.use("transcriber", "tiny.en") as whisper:
        assert whisper is not gone and "colorado" in whisper.transcribe(audio, 16_000).lower()


@needs_testdata
def test_idle_campp_and_its_diarizer_are_freed_and_work_after_reload(tmp_path: Path) -> None:
    clock = Clock()
    reg = make(tmp_path, clock)
    audio = _clip16k("andrew")
    first = reg.speaker_named("campp").embed(audio, 16_000)
    reg.diarizer()  # holds CAM++ too: both must go for the model to be freed
    gone = weakref.ref(reg.speaker_named("campp"))
    clock.now += 300
    assert set(reg.reap()) == {"speaker:campp", "vad:silero", "diarizer:vad-campp-ahc"}
    gc.collect()
    assert gone() is None
    again = reg.speaker_named("campp").embed(audio, 16_000)
    assert float(np.dot(first, again) / (np.linalg.norm(first) * np.linalg.norm(again))) > 0.999
    assert reg.diarizer().encoder is reg.speaker_named("campp")


@pytest.mark.usefixtures("fake_kinds")
def test_metrics_show_loaded_engines_with_idle_seconds_and_the_reaper_runs_with_the_app(
    tmp_path: Path,
) -> None:
    from fastapi.testclient import TestClient

    from voxvault.api.app import create_app
    from voxvault.service import VoxVault

    vv = VoxVault(Settings(data_dir=tmp_path, engine_idle_ttl_s=0.2))
    app = create_app(vv=vv, warm_up=False)
    with TestClient(app) as client:
        vv.engines.transcriber()
        body = client.get("/metrics").text
        assert 'voxvault_engine_loaded{kind="transcriber",name="base"} 1.0' in body
        assert 'voxvault_engine_in_use{kind="transcriber",name="base"} 0.0' in body
        assert 'voxvault_engine_idle_seconds{kind="transcriber",name="base"}' in body
        deadline = time.monotonic() + 5
        while vv.engines.loaded("transcriber") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "voxvault_engine_loaded{" not in client.get("/metrics").text  # unloaded by the app's reaper
    assert vv.engines._reaper is None  # stopped with the app
