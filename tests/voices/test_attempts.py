"""Refused enrollments are slowed down and then locked, per key, per tenant and per speaker (issue 25)."""

from __future__ import annotations

from typing import Any

import pytest

from voxvault.errors import VoxError
from voxvault.voices.attempts import AttemptGuard, AttemptPolicy


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []

    def record(
        self, action: str, *, actor: str | None = None, target: str | None = None, details: Any = None
    ) -> int:
        self.entries.append((action, details or {}))
        return len(self.entries)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POLICY = AttemptPolicy(slow_after=2, cooldown_s=60, lock_after=4, lock_s=3600, window_s=86_400)


def guard() -> tuple[AttemptGuard, Audit, Clock]:
    audit, clock = Audit(), Clock()
    return AttemptGuard(audit, POLICY, clock), audit, clock  # type: ignore[arg-type]


def refused_code(g: AttemptGuard, key: str, project: str, name: str) -> str | None:
    try:
        g.check(key, project, name)
    except VoxError as exc:
        assert exc.status == 429 and exc.details["retry_after"] >= 1
        return exc.code
    return None


def test_refusals_slow_down_then_lock_and_the_lock_is_audited() -> None:
    g, audit, clock = guard()
    for i in range(2):
        assert refused_code(g, "k1", "p1", "Jane Doe") is None
        g.refused("k1", "p1", "Jane Doe", consent_id=f"c{i}")
    assert refused_code(g, "k1", "p1", "Jane Doe") == "enrollment_rate_limited"
    clock.now += 61
    assert refused_code(g, "k1", "p1", "Jane Doe") is None  # waited out the cooldown
    g.refused("k1", "p1", "Jane Doe", consent_id="c2")
    clock.now += 61
    g.refused("k1", "p1", "Jane Doe", consent_id="c3")  # the fourth: locked
    clock.now += 61
    assert refused_code(g, "k1", "p1", "Jane Doe") == "enrollment_locked"
    assert {d["scope"] for a, d in audit.entries if a == "consent.attempts_locked"} == {
        "key",
        "tenant",
        "subject",
    }
    assert all("Jane" not in str(d) for _, d in audit.entries)
    clock.now += 3600
    assert refused_code(g, "k1", "p1", "Jane Doe") is None  # the lock ends


@pytest.mark.parametrize(
    ("key", "project", "name", "scope"),
    [
        ("k2", "p1", "Someone Else", "tenant"),  # another key, another speaker, same tenant
        ("k1", "p2", "Someone Else", "key"),  # the same key in another tenant
    ],
)
def test_each_scope_counts_on_its_own(key: str, project: str, name: str, scope: str) -> None:
    g, _, clock = guard()
    for i in range(4):
        g.refused("k1", "p1", "Jane Doe", consent_id=f"c{i}")
    with pytest.raises(VoxError) as err:
        g.check(key, project, name)
    assert err.value.code == "enrollment_locked" and err.value.details["scope"] == scope
    assert refused_code(g, "k3", "p3", "Jane Doe") is None  # the subject is per tenant


def test_the_speaker_counts_across_keys_and_spellings() -> None:
    g, _, _ = guard()
    for i, key in enumerate(("k1", "k2", "k3", "k4")):
        g.refused(key, "p1", "Jane  DOE" if i % 2 else "jane doe", consent_id=f"c{i}")
    with pytest.raises(VoxError) as err:
        g.check("k9", "p1", "Jane Doe")
    assert err.value.details["scope"] in ("tenant", "subject")


def test_old_refusals_fall_out_of_the_window() -> None:
    g, _, clock = guard()
    g.refused("k1", "p1", "Jane Doe", consent_id="c0")
    g.refused("k1", "p1", "Jane Doe", consent_id="c1")
    clock.now += 86_401
    assert refused_code(g, "k1", "p1", "Jane Doe") is None
