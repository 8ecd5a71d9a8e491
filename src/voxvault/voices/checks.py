"""What an enrollment measured: one typed record, kept with the consent (verified or refused) and the voice.

Enrollment fills it in as the checks run, so a refusal keeps every score measured up to the refusal; a
check that did not run is absent from the JSON (not null), which is how ``GET /v1/consents/{id}`` tells
"not measured" from a measure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

Numbers = dict[str, Any]


@dataclass
class EnrollmentChecks:
    """Every measure of one enrollment (or renewal) attempt, in the order the checks run."""

    thresholds: Numbers
    watermark: dict[str, bool] | None = None  # file label -> carried a voxvault mark (when the check runs)
    recording: Numbers | None = None
    samples: list[Numbers] | None = None  # started once the recording has passed its quality gates
    synthetic_speech: Numbers | None = None  # the recording's synthetic-speech score (voices/spoof.py)
    total_speech_s: float | None = None
    splits: dict[str, Numbers] | None = None  # file label -> one-speaker split scores
    script: Numbers | None = None
    speaker_similarity: float | None = None
    file_similarity: dict[str, Numbers] | None = None

    def add_file(self, label: str, *, marked: bool | None, scores: Numbers | None, passed: bool) -> None:
        """One file's watermark finding and quality scores (the recording first, then each sample)."""
        if marked is not None:
            self.watermark = {**(self.watermark or {}), label: marked}
        if scores is None:
            return
        if label == "recording":
            self.recording = scores
            if passed:
                self.samples = []
        else:
            self.samples = [*(self.samples or []), scores]

    def add_split(self, label: str, numbers: Numbers) -> None:
        self.splits = {**(self.splits or {}), label: numbers}

    def to_json(self) -> dict[str, Any]:
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}
