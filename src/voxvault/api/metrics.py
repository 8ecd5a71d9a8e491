"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from voxvault.engines.registry import EngineRegistry

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

    def watch_engines(self, engines: EngineRegistry) -> None:
        """Loaded engines, their idle seconds and leases, read at scrape time (idle unload made visible)."""
        self.registry.register(_EngineCollector(engines))


class _EngineCollector(Collector):
    def __init__(self, engines: EngineRegistry) -> None:
        self.engines = engines

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["kind", "name"]
        loaded = GaugeMetricFamily("voxvault_engine_loaded", "1 per engine in memory now.", labels=labels)
        idle = GaugeMetricFamily(
            "voxvault_engine_idle_seconds",
            "Seconds since an engine's last use ended; unloaded at VOXVAULT_ENGINE_IDLE_TTL_S.",
            labels=labels,
        )
        in_use = GaugeMetricFamily("voxvault_engine_in_use", "Leases held on an engine now.", labels=labels)
        for state in self.engines.status():
            loaded.add_metric([state.kind, state.name], 1)
            idle.add_metric([state.kind, state.name], state.idle_s)
            in_use.add_metric([state.kind, state.name], state.in_use)
        yield from (loaded, idle, in_use)
