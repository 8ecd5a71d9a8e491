"""Fixtures the API tests share."""

from __future__ import annotations

from typing import Any

import pytest


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
