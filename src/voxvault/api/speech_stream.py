"""The byte stream every speech route sends (OpenAI speech, ElevenLabs text to speech, voice previews):
admitted, recorded through the generation service, metered, and released however it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from voxvault.api.metrics import Metrics
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault
from voxvault.synthesis import PreparedSpeech
from voxvault.synthesis.admission import Admission
from voxvault.synthesis.generation import Generation, GenerationStream, Render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechStreams:
    """Starts the metered byte stream every speech route sends (``api.deps.SpeechStreamsDep``): the
    admission place, the generation service's record, and the metrics of what was sent."""

    vv: VoxVault
    admission: Admission
    metrics: Metrics

    def start(
        self,
        principal: Principal,
        prepared: PreparedSpeech,
        t_start: float,
        render: Render | None = None,
    ) -> tuple[Iterator[bytes], Generation]:
        """Admit, then open the output through the generation service and return its metered bytes.

        ``render`` (default: the pipeline's stream) is called before any response starts, so whatever it
        sets up (its encoder) fails as a 4xx rather than after the headers.
        """
        self.admission.reserve()
        try:
            stream = self.vv.generation.stream(prepared, principal.key_id, render=render, started=t_start)
        except BaseException:
            self.admission.release()
            raise
        return _metered(stream, self.admission, self.metrics, t_start), stream.generation


def _metered(
    stream: GenerationStream, admission: Admission, metrics: Metrics, t_start: float
) -> Iterator[bytes]:
    """Wrap a generation's bytes for the response: the admission slot and the metrics (the generation
    service records and finishes the output itself)."""
    prepared = stream.generation.prepared
    try:
        with admission.running():
            metrics.active_syntheses.inc()
            try:
                first = True
                for data in stream:
                    if first:
                        metrics.first_audio_seconds.labels(format=prepared.format).observe(
                            time.perf_counter() - t_start
                        )
                        first = False
                    yield data
            finally:
                metrics.active_syntheses.dec()
    finally:
        stream.cancel.set()
        admission.release()
        stats = stream.stats
        total = time.perf_counter() - t_start
        audio_s = stats.get("audio_s", 0.0)
        if audio_s > 0:
            metrics.real_time_factor.observe(stats.get("total_s", total) / audio_s)
            metrics.audio_seconds.inc(audio_s)
        stream.close()  # finishes the record: completed when it ran out, else cancelled
        log.info(
            "speech generation=%s voice=%s format=%s chars=%d pieces=%d audio_s=%.2f first_audio_s=%.3f "
            "total_s=%.3f",
            stream.generation.id,
            prepared.voice.voice_id,
            prepared.format,
            prepared.text_chars,
            len(prepared.pieces),
            audio_s,
            stats.get("first_audio_s", -1.0),
            total,
        )
