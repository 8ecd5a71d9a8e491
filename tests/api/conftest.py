"""Fixtures the API tests share."""

from __future__ import annotations

from typing import Any

import pytest

from voxvault.voices.script_heard import HeardScores


@pytest.fixture
def paced_tts(vv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each piece takes at least 40 ms, as a real model's does: on the fake engine a whole answer could be
    rendered into the socket before the client reads its first bytes, leaving nothing to drop."""
    import time as _time

    engine = vv.engines.tts()
    for name in ("synthesize", "synthesize_timed"):
        original = getattr(engine, name, None)
        if original is None:
            continue

        def paced(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            _time.sleep(0.04)
            return _original(*args, **kwargs)

        monkeypatch.setattr(engine, name, paced)


class ScriptHeard:
    """The script check, passing: for tests about the speaker checks, which run after it. A synthetic
    reading of a fresh random code is heard by Whisper now and then with a word wrong (0.6 recall), which
    would refuse the enrollment before the check under test; Whisper's judgement of readings is tested in
    test_consent_attacks.py and measured by make bench-consent."""

    def check(self, audio: Any, **_: Any) -> HeardScores:
        return HeardScores(statement_recall=1.0)
