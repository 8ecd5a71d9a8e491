"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "voxvault_http_request_duration_seconds",
            "Time to the response headers, by route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_audio_seconds = Histogram(
            "voxvault_time_to_first_audio_seconds",
            "From request start to the first encoded audio bytes.",
            ["format"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "voxvault_real_time_factor",
            "Synthesis wall time divided by audio duration (lower is faster).",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "voxvault_audio_seconds_total", "Seconds of audio synthesised.", registry=self.registry
        )
        self.errors = Counter(
            "voxvault_errors_total",
            "Refused or failed requests by error code.",
            ["code"],
            registry=self.registry,
        )
        self.active_syntheses = Gauge(
            "voxvault_active_syntheses", "Syntheses running now.", registry=self.registry
        )
