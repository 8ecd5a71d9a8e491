"""Health, readiness, voices and metrics."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_health_and_ready(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_voices_lists_the_presets(client) -> None:
    voices = client.get("/v1/voices").json()["voices"]
    presets = [v for v in voices if v["kind"] == "preset"]
    assert {"alpha", "kumo"} <= {v["voice_id"] for v in presets}
    assert voices[: len(presets)] == presets  # presets first, then the caller's project's cloned voices
    assert all(v["kind"] == "cloned" for v in voices[len(presets) :])


def test_metrics_expose_latency_first_audio_rtf_and_errors(client) -> None:
    client.post(
        "/v1/audio/speech", json={"input": "Metrics please.", "voice": "alpha", "response_format": "pcm"}
    )
    client.post("/v1/audio/speech", json={"input": "", "voice": "alpha"})
    text = client.get("/metrics").text
    assert (
        'voxvault_http_request_duration_seconds_bucket{le="0.01",method="POST",route="/v1/audio/speech"'
        in text
    )
    assert "voxvault_time_to_first_audio_seconds_count" in text
    assert "voxvault_real_time_factor_count" in text
    assert 'voxvault_errors_total{code="empty_text"}' in text


def test_openapi_docs_served(client) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/audio/speech" in spec["paths"]
