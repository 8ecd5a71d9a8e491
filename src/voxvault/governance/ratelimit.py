"""Rate limits per API key and per voice: a token bucket in process, or a fixed window in Redis.

``hit(bucket, per_minute)`` takes one unit and returns ``None`` when allowed, or the seconds to wait.
In process, each bucket holds ``per_minute`` tokens refilled evenly over a minute (bursts up to the limit).
With ``VOXVAULT_REDIS_URL`` the count is shared by every worker and host: one atomic Lua script does
INCR + EXPIRE on a per-minute window key. If Redis stops answering, the limiter falls back to the
in-process bucket (and logs it) rather than refusing all speech or letting it through unmetered.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from voxvault.errors import VoxError

if TYPE_CHECKING:
    from voxvault.governance.audit import AuditTrail
    from voxvault.governance.keys import Principal

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    def hit(self, bucket: str, per_minute: int) -> float | None:
        """Consume one unit of ``bucket``; None if allowed, else seconds until one is available."""
        ...


class LocalRateLimiter:
    """Token buckets in this process's memory (one server process, or tests)."""

    def __init__(self, clock: Any = time.monotonic, max_buckets: int = 100_000) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, last refill time)
        self._lock = threading.Lock()
        self._max = max_buckets

    def hit(self, bucket: str, per_minute: int) -> float | None:
        if per_minute <= 0:
            return None
        rate = per_minute / 60.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[bucket] = (tokens - 1.0, now)
                allowed = True
            else:
                self._buckets[bucket] = (tokens, now)
                allowed = False
            if len(self._buckets) > self._max:
                self._evict(now)
        return None if allowed else (1.0 - tokens) / rate

    def _evict(self, now: float) -> None:
        """Forget buckets idle long enough to be full again (bounded memory under many keys)."""
        for name, (_tokens, last) in list(self._buckets.items()):
            if now - last > 60.0:
                del self._buckets[name]


# KEYS[1] = window key; ARGV[1] = window seconds. Returns [count, ttl_ms].
_FIXED_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1] * 1000) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1] * 1000); ttl = ARGV[1] * 1000 end
return {n, ttl}
"""


class RedisRateLimiter:
    """Fixed one-minute windows in Redis, shared by every process that uses the same server."""

    WINDOW_S = 60
    RETRY_S = 5.0  # after a failure, try Redis again this much later

    def __init__(self, url: str, prefix: str = "voxvault:rl:", client: Any | None = None) -> None:
        if client is None:
            import redis

            client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(_FIXED_WINDOW)
        self._fallback = LocalRateLimiter()
        self._down_since: float | None = None
        self._retry_at = 0.0

    def hit(self, bucket: str, per_minute: int) -> float | None:
        if per_minute <= 0:
            return None
        if self._down_since is not None and time.monotonic() < self._retry_at:
            return self._fallback.hit(bucket, per_minute)  # do not pay a connect timeout per request
        window = int(time.time() // self.WINDOW_S)
        try:
            count, ttl_ms = self._script(keys=[f"{self.prefix}{bucket}:{window}"], args=[self.WINDOW_S])
        except Exception as exc:  # noqa: BLE001 - any Redis failure: degrade, do not fail requests
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("redis rate limiter unavailable (%s); limiting in process", type(exc).__name__)
            self._retry_at = time.monotonic() + self.RETRY_S
            return self._fallback.hit(bucket, per_minute)
        if self._down_since is not None:
            log.info("redis rate limiter back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None
        if int(count) <= per_minute:
            return None
        return max(int(ttl_ms), 1) / 1000.0


def open_rate_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else LocalRateLimiter()


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for the ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(wait))


class SpeechLimits:
    """The limits speech is subject to: per API key and per (project, voice); refusals are audited.

    A client hammering past its limit must not flood the audit log, so each bucket gets at most one
    ``access.rate_limited`` entry per ``audit_every_s``; the next entry counts the refusals in between.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        audit: AuditTrail,
        *,
        per_key: int,
        per_voice: int,
        audit_every_s: float = 10.0,
    ) -> None:
        self.limiter = limiter
        self.audit = audit
        self.per_key = per_key
        self.per_voice = per_voice
        self.audit_every_s = audit_every_s
        self._last_audit: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def check(self, principal: Principal, voice_id: str) -> None:
        """Take one unit from the key's and the voice's budget, or raise 429 ``rate_limited``."""
        checks = (
            ("key", f"key:{principal.key_id}", self.per_key),
            ("voice", f"voice:{principal.project_id}:{voice_id}", self.per_voice),
        )
        for kind, bucket, limit in checks:
            wait = self.limiter.hit(bucket, limit)
            if wait is None:
                continue
            retry = retry_after_seconds(wait)
            self._audit(principal, voice_id, kind, bucket, limit, retry)
            raise VoxError(
                "rate_limited",
                f"too many requests for this {'API key' if kind == 'key' else 'voice'} "
                f"(limit {limit} per minute); retry in {retry} s",
                429,
                retry_after=retry,
            )

    def _audit(
        self, principal: Principal, voice_id: str, kind: str, bucket: str, limit: int, retry: int
    ) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last_audit.get(bucket, (-math.inf, 0))
            if now - last < self.audit_every_s:
                self._last_audit[bucket] = (last, suppressed + 1)
                return
            self._last_audit[bucket] = (now, 0)
        self.audit.record(
            "access.rate_limited",
            actor=principal.key_id,
            target=voice_id,
            details={
                "limit": kind,
                "per_minute": limit,
                "retry_after_s": retry,
                "suppressed_since_last": suppressed,
            },
        )
