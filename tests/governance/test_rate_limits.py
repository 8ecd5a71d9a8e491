"""Rate limits: in-process token buckets, Redis fixed windows (against the real local Redis), 429s audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from voxvault.errors import VoxError
from voxvault.governance.keys import Principal
from voxvault.governance.ratelimit import LocalRateLimiter, RedisRateLimiter, SpeechLimits
from voxvault.service import VoxVault

REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_bucket_allows_the_limit_then_refills() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(clock=clock)
    assert [limiter.hit("k", 3) for _ in range(3)] == [None, None, None]
    wait = limiter.hit("k", 3)
    assert wait is not None and 19.0 < wait <= 20.0  # one token every 20 s at 3/minute
    assert limiter.hit("other", 3) is None  # buckets are independent
    clock.now += 20.0
    assert limiter.hit("k", 3) is None
    assert limiter.hit("k", 3) is not None
    assert all(limiter.hit("off", 0) is None for _ in range(100))  # 0 = no limit


@pytest.fixture
def redis_limiter() -> Iterator[RedisRateLimiter]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    prefix = f"voxvault-test:{uuid.uuid4().hex}:"
    yield RedisRateLimiter(REDIS_URL, prefix=prefix)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_redis_window_is_shared_between_limiters(redis_limiter: RedisRateLimiter) -> None:
    other_worker = RedisRateLimiter(REDIS_URL, prefix=redis_limiter.prefix)
    assert redis_limiter.hit("key:a", 3) is None
    assert other_worker.hit("key:a", 3) is None
    assert redis_limiter.hit("key:a", 3) is None
    wait = other_worker.hit("key:a", 3)
    assert wait is not None and 0 < wait <= 60
    assert redis_limiter.hit("key:b", 3) is None
    keys = list(redis_limiter.client.scan_iter(f"{redis_limiter.prefix}*"))
    assert keys and all(0 < redis_limiter.client.pttl(k) <= 60_000 for k in keys)  # windows expire


def test_unreachable_redis_falls_back_to_in_process_limits() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    assert limiter.hit("k", 2) is None
    assert limiter.hit("k", 2) is None
    assert limiter.hit("k", 2) is not None


def _principal(key_id: str = "key-1", project: str = "p1") -> Principal:
    return Principal(key_id=key_id, org_id="o", project_id=project, scopes=frozenset({"speech:create"}))


def test_speech_limits_per_key_and_per_voice_are_refused_and_audited(vv: VoxVault) -> None:
    limits = SpeechLimits(LocalRateLimiter(), vv.audit, per_key=3, per_voice=2)
    limits.check(_principal("k1"), "alpha")
    limits.check(_principal("k2"), "alpha")
    with pytest.raises(VoxError) as err:
        limits.check(_principal("k3"), "alpha")  # third use of the voice in this project
    assert (err.value.code, err.value.status) == ("rate_limited", 429)
    assert err.value.details["retry_after"] >= 1
    limits.check(_principal("k1", project="p2"), "alpha")  # another project's use of a preset is its own
    limits.check(_principal("k1"), "kumo")
    with pytest.raises(VoxError):
        limits.check(_principal("k1"), "other")  # k1's fourth request: the key's limit
    for _ in range(5):  # hammering does not flood the audit log
        with pytest.raises(VoxError):
            limits.check(_principal("k1"), "other")
    entries = [e for e in vv.audit.entries() if e["action"] == "access.rate_limited"]
    assert [(e["actor"], e["details"]["limit"]) for e in entries] == [("k3", "voice"), ("k1", "key")]
    assert vv.audit.verify().ok


def test_settings_reach_the_service_limits(make_vv, tmp_path) -> None:  # type: ignore[no-untyped-def]
    vv = make_vv(
        tmp_path / "d",
        rate_limit_per_key_per_minute=7,
        rate_limit_per_voice_per_minute=0,
        redis_url=REDIS_URL,
    )
    assert (vv.limits.per_key, vv.limits.per_voice) == (7, 0)
    assert isinstance(vv.limits.limiter, RedisRateLimiter)
    assert "redis_url" in vv.settings.public_dict()
