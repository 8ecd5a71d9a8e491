"""Shared fixtures: one loaded VoxVault per test session and kind of engines, a fresh data dir per test
where it matters.

``vv``, ``app``, ``client``... run on fake engines (engines/fake.py: no weights, milliseconds per call):
what most tests check is the product (auth, errors, audit, jobs), not a model. A module that judges a real
model, or is a feature's one end-to-end acceptance path, says ``pytestmark = pytest.mark.real_engines``
and gets the same fixtures on Kokoro, GE2E, Silero, PocketSphinx and Whisper; ``real_vv``,
``real_client``... name the real ones explicitly inside a fake module.

Model weights are joined once into ``MODEL_CACHE`` (the user's cache folder) and reused by every test, every
run and every checkout, so the suite pays the 92 MB join and the float-graph conversion once per machine.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"
SPEAKERS = TESTDATA / "speakers"
#: The joined and converted weights (Kokoro's float and fused graphs, the compiled kernels, Whisper), shared
#: by every checkout of the user: each file is keyed by its source's SHA-256 and its rewrite's version, so
#: clones at other commits reuse what still fits and rebuild the rest. A fresh clone built 1.2 GB here
#: in the first minutes of its first run. ``VOXVAULT_TEST_CACHE_DIR`` moves it.
MODEL_CACHE = Path(
    os.environ.get("VOXVAULT_TEST_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voxvault" / "test-models"
)


def speaker_clips() -> list[Path]:
    return sorted(SPEAKERS.glob("en_*.wav")) if SPEAKERS.is_dir() else []


needs_testdata = pytest.mark.skipif(not speaker_clips(), reason="../shared/testdata/speakers is missing")


#: Each pipeline's readings of single sentences (``read_aloud``), dropped with the pipeline.
_readings: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], np.ndarray]] = weakref.WeakKeyDictionary()
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def read_aloud(vv: Any, text: str, voice: str) -> tuple[np.ndarray, int]:
    """A preset ``voice`` reading ``text`` without the watermark, standing in for a live person's recording:
    sentence by sentence with 0.3 s between, each sentence rendered once per pipeline. A consent script's
    statement repeats from test to test and only its one-time code changes, so the consent suites render
    the long statement once instead of in every test."""
    pipeline = vv.pipeline
    rendered = _readings.setdefault(pipeline, {})
    rate = pipeline.tts.sample_rate
    parts: list[np.ndarray] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        if (voice, sentence) not in rendered:
            speech = pipeline.render(pipeline.prepare(sentence, vv.catalog.resolve(voice), fmt="pcm"))
            assert speech.sample_rate == rate
            rendered[(voice, sentence)] = speech.samples
        parts += [rendered[(voice, sentence)], np.zeros(int(0.3 * rate), np.float32)]
    return np.concatenate(parts[:-1]), rate


@pytest.fixture(scope="session")
def model_cache() -> Path:
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return MODEL_CACHE


#: The weight-free engines (src/voxvault/engines/fake.py) the product tests run on by default.
FAKE_ENGINES = {
    "tts_engine": "fake",
    "speaker_engine": "fake",
    "vad_engine": "fake",
    "asr_engine": "fake",
    "transcriber_engine": "fake",
}
REAL_ENGINES = "real_engines"  # a module marked ``pytestmark = pytest.mark.real_engines`` gets real models

#: What still runs the real models, and why (a path prefix under the repo; marked at collection).
REAL_MODULES: dict[str, str] = {
    "tests/engines/": "each engine's own tests (Kokoro, GE2E, CAM++, Silero, PocketSphinx, Whisper)",
    "tests/cloning/": "cloning maps are fitted to and measured through Kokoro and GE2E",
    "tests/api/test_consent_flow.py": "consent/enrollment acceptance: real voices, Whisper hears the script",
    "tests/api/test_consent_attacks.py": "the attacks are refused by the real judges (GE2E, CAM++, Whisper)",
    "tests/api/test_transcription.py": "transcription acceptance: Whisper on real speech",
    "tests/api/test_transcription_stream.py": "speech-to-text socket acceptance: Whisper on real speech",
    "tests/jobs/test_batch_cli.py": "batch acceptance: kill -9 and resume, Ray, on Kokoro in real processes",
    "tests/voices/test_identity.py": "identity thresholds are GE2E's, on real clips",
    "tests/voices/test_quality.py": "quality measures use Silero's speech segments on real clips",
    "tests/voices/test_cli_voices.py": "the CLI enrollment path end to end",
    "tests/voices/test_script_check.py": "PocketSphinx hears the consent script Kokoro reads",
    "tests/web/test_console.py": "the browser console's enrollment end to end",
    "tests/web/test_transcribe_tab.py": "the console's Transcribe tab end to end: Whisper and the diarizer",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the modules of ``REAL_MODULES``: their ``vv``/``client``... fixtures are the real ones."""
    marked: set[pytest.Module] = set()
    for item in items:
        module = item.getparent(pytest.Module)
        if module is None or module in marked:
            continue
        rel = module.path.relative_to(REPO).as_posix() if module.path.is_relative_to(REPO) else ""
        if any(rel.startswith(prefix) for prefix in REAL_MODULES):
            module.add_marker(REAL_ENGINES)
            marked.add(module)
    if hasattr(config, "workerinput"):  # an xdist worker: the controller hands out units in this order
        order_by_unit_cost(items)


# -- the workers (``make test``: pytest-xdist ``-n 3 --dist loadgroup``) -------------------------------------
#: The modules that run the session's real-model VoxVault (a ``REAL_MODULES`` module, or one naming a
#: ``real_*`` fixture) form two units, split where the work parts: the consent checks (Kokoro readings judged
#: by GE2E, CAM++ and Whisper) and the rest (cloning, adaptation, batch, transcription). Each unit loads its
#: models once on the worker that runs it; one unit for both left the suite waiting on one worker (7:13 on an
#: idle box, session 14). Every other module is a unit of its own (its module fixtures set up once, as with
#: ``--dist loadfile``), run by whichever worker is free.
REAL_GROUP = "real-models"
CONSENT_GROUP = "real-consent"
CONSENT_MODULES = ("tests/api/test_consent_", "tests/web/test_console.py", "tests/voices/")
REAL_FIXTURE = re.compile(r"\breal_(?:settings|vv|app|admin_key|client|anon_client|live_server|target)\b")
#: A test or fixture parameter naming the session world (``vv: Any``, ``client,``...).
WORLD_FIXTURE = re.compile(r"\b(?:vv|app|client|anon_client|live_server|target|admin_key)\b\s*[:,)]")
#: What each module took last time (``--store-durations``): the units start longest first, so the last one
#: running is a short one (as pytest-split keeps ``.test_durations``). Relative figures; any machine will do.
DURATIONS = REPO / "tests" / "durations.json"


@functools.cache
def _source(path: str) -> str:
    module = REPO / path
    return module.read_text() if module.is_file() else ""


def xdist_group(nodeid: str) -> str:
    """The unit of work a test belongs to: ``CONSENT_GROUP``, ``REAL_GROUP`` or its module's path."""
    path = nodeid.split("::")[0]
    source = _source(path)
    if not (any(path.startswith(prefix) for prefix in REAL_MODULES) or REAL_FIXTURE.search(source)):
        return path
    if path.startswith("tests/engines/") and not (
        WORLD_FIXTURE.search(source) or REAL_FIXTURE.search(source)
    ):
        return path  # an engine's own tests, building their own engines
    return CONSENT_GROUP if path.startswith(CONSENT_MODULES) else REAL_GROUP


def unit_costs(paths: set[str]) -> dict[str, float]:
    """Each unit's expected seconds: its modules' stored durations (a module not stored yet counts as the
    median one)."""
    import json
    import statistics

    known: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}
    default = statistics.median(known.values()) if known else 1.0
    costs: dict[str, float] = {}
    for path in paths:
        unit = xdist_group(path)
        costs[unit] = costs.get(unit, 0.0) + known.get(path, default)
    return costs


def order_by_unit_cost(items: list[pytest.Item]) -> None:
    """Longest unit first, each unit's tests together and in their own order."""
    paths = [item.nodeid.split("::")[0] for item in items]
    costs = unit_costs(set(paths))
    rank = {id(item): (-costs[xdist_group(path)], xdist_group(path), i) for i, (item, path) in
            enumerate(zip(items, paths, strict=True))}  # fmt: skip
    items.sort(key=lambda item: rank[id(item)])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` by ``xdist_group`` (pytest-xdist's own loadgroup reads ``xdist_group`` marks
    through a node id suffix that pytest 9 no longer carries, so it would scatter every test), the units
    handed out in the order the workers collected them (``order_by_unit_cost``), not by test count."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModelWorld(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    config.option.loadscopereorder = False
    return ByModelWorld(config, log)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help=f"write each module's seconds (setup, call and teardown) to {DURATIONS.relative_to(REPO)}",
    )


_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    _durations[path] = _durations.get(path, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("store_durations") and not hasattr(config, "workerinput"):
        import json

        stored = {path: round(seconds, 1) for path, seconds in sorted(_durations.items())}
        DURATIONS.write_text(json.dumps(stored, indent=1) + "\n")


def _settings(data: Path, model_cache: Path, **engines: Any):  # type: ignore[no-untyped-def]
    from voxvault.config import Settings

    # The suites refuse many enrollments on purpose: no lockout for the session's instance (the attempt
    # guard is tested on its own, tests/voices/test_attempts.py and tests/api/test_consent_attacks.py).
    return Settings(
        data_dir=data,
        cache_dir=model_cache,
        max_input_chars=20_000,
        consent_refusals_before_cooldown=10**6,
        consent_refusals_before_lock=10**6,
        # The suites' genuine consent readers are the engine's presets rendered unmarked (stand-ins for a
        # live person), which the synthetic-speech detector refuses, as it should: it is off here and on in
        # the tests about it (tests/voices/test_spoof.py, tests/api/test_consent_attacks.py section 6).
        consent_synthetic_speech=False,
        # A loaded model stays for the whole run (tests/engines/test_registry.py tests the idle unload).
        engine_idle_ttl_s=0,
        **engines,
    )


def _vv(settings):  # type: ignore[no-untyped-def]
    from voxvault.service import VoxVault

    vv = VoxVault(settings)
    vv.keys.ensure_default_project()  # the first project is "default", whatever tests create later
    return vv


def _admin_key(vv) -> str:  # type: ignore[no-untyped-def]
    """An admin key in the default tenant (what `voxvault serve` prints on first start)."""
    org_id, project_id = vv.keys.ensure_default_project()
    return str(vv.keys.create(org_id=org_id, project_id=project_id, scopes=["admin"], name="tests").secret)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a loopback port, for real HTTP clients (openai package)."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _target(vv: Any) -> np.ndarray:
    speech = vv.speak("Every morning I walk to the market and buy fresh bread.", voice="alpha", format="pcm")
    return np.asarray(vv.engines.speaker().embed(speech.samples, speech.sample_rate), dtype=np.float32)


# -- two worlds, each built once per session: fake engines (default) and real models ------------------
@pytest.fixture(scope="session")
def fake_settings(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):  # type: ignore[no-untyped-def]
    return _settings(tmp_path_factory.mktemp("data-fake"), model_cache, **FAKE_ENGINES)


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory: pytest.TempPathFactory, model_cache: Path):  # type: ignore[no-untyped-def]
    return _settings(tmp_path_factory.mktemp("data"), model_cache)


@pytest.fixture(scope="session")
def fake_vv(fake_settings):  # type: ignore[no-untyped-def]
    vv = _vv(fake_settings)
    _FAKE_WORLD.append(vv)
    return vv


_FAKE_WORLD: list[Any] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name any real model the fake world had to load (Whisper, CAM++...): a test that slows the suite."""
    for vv in _FAKE_WORLD:
        real = {k: v for k, v in vv.engines.load_seconds.items() if not k.endswith(":fake")}
        if real:
            loads = ", ".join(f"{k} ({v:.1f} s)" for k, v in sorted(real.items()))
            terminalreporter.write_line(f"real models loaded by fake-engine tests: {loads}")


@pytest.fixture(scope="session")
def real_vv(real_settings):  # type: ignore[no-untyped-def]
    return _vv(real_settings)


@pytest.fixture(scope="session")
def fake_app(fake_vv):  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    return create_app(vv=fake_vv, warm_up=False)


@pytest.fixture(scope="session")
def real_app(real_vv):  # type: ignore[no-untyped-def]
    from voxvault.api.app import create_app

    return create_app(vv=real_vv, warm_up=False)


@pytest.fixture(scope="session")
def fake_admin_key(fake_vv) -> str:  # type: ignore[no-untyped-def]
    return _admin_key(fake_vv)


@pytest.fixture(scope="session")
def real_admin_key(real_vv) -> str:  # type: ignore[no-untyped-def]
    return _admin_key(real_vv)


@pytest.fixture(scope="session")
def fake_client(fake_app, fake_admin_key: str):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(fake_app, headers={"Authorization": f"Bearer {fake_admin_key}"}) as c:
        yield c


@pytest.fixture(scope="session")
def real_client(real_app, real_admin_key: str):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(real_app, headers={"Authorization": f"Bearer {real_admin_key}"}) as c:
        yield c


@pytest.fixture(scope="session")
def fake_anon_client(fake_app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(fake_app) as c:
        yield c


@pytest.fixture(scope="session")
def real_anon_client(real_app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(real_app) as c:
        yield c


@pytest.fixture(scope="session")
def fake_live_server(fake_app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    yield from _serve(fake_app)


@pytest.fixture(scope="session")
def real_live_server(real_app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    yield from _serve(real_app)


@pytest.fixture(scope="session")
def fake_target(fake_vv: Any) -> np.ndarray:
    return _target(fake_vv)


@pytest.fixture(scope="session")
def real_target(real_vv: Any) -> np.ndarray:
    return _target(real_vv)


# -- what a test module gets by the plain names: the fakes, or real models under the module's marker -------
def _pick(request: pytest.FixtureRequest, name: str) -> Any:
    real = request.node.get_closest_marker(REAL_ENGINES) is not None
    return request.getfixturevalue(("real_" if real else "fake_") + name)


@pytest.fixture(scope="module")
def settings(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The session's Settings: fake engines, or real ones in a ``real_engines`` module."""
    return _pick(request, "settings")


@pytest.fixture(scope="module")
def vv(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """One loaded VoxVault per session and kind of engines (fake, or real in a ``real_engines`` module)."""
    return _pick(request, "vv")


@pytest.fixture(scope="module")
def app(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return _pick(request, "app")


@pytest.fixture(scope="module")
def admin_key(request: pytest.FixtureRequest) -> str:
    """An admin key in the default tenant (what `voxvault serve` prints on first start)."""
    return str(_pick(request, "admin_key"))


@pytest.fixture(scope="module")
def client(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A TestClient authenticated with the admin key."""
    return _pick(request, "client")


@pytest.fixture(scope="module")
def anon_client(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return _pick(request, "anon_client")


@pytest.fixture(scope="module")
def live_server(request: pytest.FixtureRequest) -> str:
    """The app served by uvicorn on a loopback port, for real HTTP clients (openai package)."""
    return str(_pick(request, "live_server"))


@pytest.fixture(scope="module")
def target(request: pytest.FixtureRequest) -> np.ndarray:
    """A target speaker's embedding (what cloning aims at)."""
    return np.asarray(_pick(request, "target"))


# -- a cloned voice row as enrollment writes it, and a target speaker (voice, cloning and job tests) --
def make_voice(
    vv: Any,
    project: str | None = None,
    style: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
    *,
    speaker_name: str = "Ada",
    name: str = "ada",
    recording_sha256: str | None = None,
    evidence: bytes | None = None,
    keep_samples_until: dt.datetime | None = None,
) -> str:
    """A consented cloned voice as enrollment writes it (voices/lifecycle.py ``VoiceRegistry.create``): a
    verified consent, an active voice expiring with it, its embedding and style sealed under its prefix.

    ``project`` defaults to the default project, ``style`` to preset alpha's (any engine speaks it) and
    ``embedding`` to a constant one. ``evidence`` seals a consent recording (``consents/<consent id>``, as
    enrollment keeps it); ``keep_samples_until`` keeps one raw sample (``samples/0``) until that time, which
    the retention sweep then deletes; ``recording_sha256`` is the consent recording's digest (replay guard).
    """
    from voxvault.store.models import Consent, Voice, utcnow
    from voxvault.voices.lifecycle import array_bytes

    if project is None:
        _, project = vv.keys.ensure_default_project()
    if style is None:
        style = np.asarray(vv.catalog.resolve("alpha").style, dtype=np.float32)
    if embedding is None:
        embedding = np.ones(256, dtype=np.float32)
    now = utcnow()
    with vv.db.session() as s:
        consent = Consent(
            project_id=project,
            speaker_name=speaker_name,
            purpose="tests",
            organization_name="Lab",
            script="...",
            challenge_hash="0" * 64,
            challenge_expires_at=now,
            status="verified",
            expires_at=now + dt.timedelta(days=30),
            recording_sha256=recording_sha256,
        )
        s.add(consent)
        s.flush()
        voice = Voice(
            project_id=project,
            name=name,
            kind="cloned",
            status="active",
            engine="kokoro",
            consent_id=consent.id,
            expires_at=consent.expires_at,
        )
        s.add(voice)
        s.flush()
        vid, cid = voice.id, consent.id
    reg = vv.voice_registry
    emb_key = reg.put_sealed(vid, "embedding", array_bytes(embedding))
    style_key = reg.put_sealed(vid, "style", array_bytes(style))
    evidence_key = reg.put_sealed(vid, f"consents/{cid}", evidence) if evidence is not None else None
    samples: dict[str, Any] = {"kept": False, "count": 1}
    if keep_samples_until is not None:
        reg.put_sealed(vid, "samples/0", b"raw sample bytes")
        samples = {"kept": True, "count": 1, "until": keep_samples_until.isoformat()}
    with vv.db.session() as s:
        row = s.get(Voice, vid)
        assert row is not None
        row.embedding_blob, row.style_blob, row.retention = emb_key, style_key, {"samples": samples}
        if evidence_key is not None:
            consent_row = s.get(Consent, cid)
            assert consent_row is not None
            consent_row.evidence_blob = evidence_key
    return str(vid)


@pytest.fixture(name="make_voice")
def make_voice_fixture() -> Callable[..., str]:
    return make_voice


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI's settings for an in-process run: a fresh data folder and the fake engines, as the
    VOXVAULT_* variables a user would set (none of the caller's own)."""
    for var in [v for v in os.environ if v.startswith("VOXVAULT_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("VOXVAULT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VOXVAULT_CACHE_DIR", str(tmp_path / "cache"))
    for name, value in FAKE_ENGINES.items():
        monkeypatch.setenv(f"VOXVAULT_{name.upper()}", value)
    return tmp_path
