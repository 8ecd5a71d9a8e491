"""Schemathesis against the app's own OpenAPI spec, authenticated as an admin: no input gives a 5xx.

Runs on its own VoxVault (fresh data dir, short texts, no rate limits) that shares the already-loaded
engines, with a bounded number of examples per operation so the whole run stays well under two minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from voxvault.api.app import create_app
from voxvault.config import Settings
from voxvault.service import VoxVault

# Synthesis routes speak the generated text; without a TTS engine they cannot be judged.
NEEDS_TTS = ("/v1/audio/speech", "/v1/text-to-speech/", "/v1/voices")
EXAMPLES = 15
SPEECH_EXAMPLES = 6


@dataclass
class Target:
    app: Any
    admin: str
    tts: bool


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, vv: VoxVault) -> Target:
    data: Path = tmp_path_factory.mktemp("schemathesis")
    own = VoxVault(
        Settings(
            data_dir=data,
            cache_dir=vv.settings.resolved_cache_dir,
            max_input_chars=60,
            rate_limit_per_key_per_minute=0,
            rate_limit_per_voice_per_minute=0,
        )
    )
    own.engines = vv.engines  # the session's loaded engines: no second model load
    created = own.bootstrap()
    assert created is not None
    try:
        own.catalog  # noqa: B018
        tts = True
    except Exception:  # noqa: BLE001
        tts = False
    return Target(create_app(vv=own, warm_up=False), created.secret, tts)


def _check(target: Target, operation: Any, mode: Any, examples: int) -> str | None:
    """Run ``operation`` with generated cases; the first 5xx (shrunk by Hypothesis) as a message."""
    headers = {"Authorization": f"Bearer {target.admin}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001 - the in-process transport re-raises what would be a 500
            raise AssertionError(
                f"{case.method} {case.formatted_path}: raised {type(exc).__name__}: {exc}"
            ) from exc
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]!r}: "
            f"{response.status_code} {response.text[:300]}"
        )

    try:
        run()
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    except Unsatisfiable:
        pass  # nothing to make invalid (no parameters): the positive run covered it
    return None


def test_no_input_causes_a_server_error(target: Target) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    failures, ran = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not target.tts and operation.path.startswith(NEEDS_TTS):
            continue  # the lead's synthesis routes are judged once the engine is present
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            slow = operation.path.startswith(NEEDS_TTS)  # each valid case synthesises speech
            problem = _check(target, operation, mode, SPEECH_EXAMPLES if slow else EXAMPLES)
            if problem:
                failures.append(f"[{mode.value}] {problem}")
        ran.append(operation.label)
    assert "POST /v1/keys" in ran and "GET /v1/audit" in ran
    assert not failures, "\n".join(failures)
