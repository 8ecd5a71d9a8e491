"""``Voice.meta`` as rows hold it: the typed shape reads what was stored and writes the same JSON back."""

from __future__ import annotations

from typing import Any

from voxvault.voices.lifecycle import Conditioning, DecoderState, VoiceMeta

# what enrollment stores; GET /v1/voices/{id} shows "scores" and "conditioning"
CONDITIONING: dict[str, Any] = {
    "method": "instant_map",
    "weights": {"instant_map": 1.0},
    "decoder_step": True,
    "pitch_factor": 1.0312,
}
ENROLLED: dict[str, Any] = {
    "scores": {"thresholds": {"min_snr_db": 15.0}, "speaker_similarity": 0.91},
    "conditioning": CONDITIONING,
    "samples": 3,
    "decoder": {"current": "decoder-instant", "previous": None, "runtime": {}},
}
ADAPTED: dict[str, Any] = {  # after a decoder adaptation job
    **ENROLLED,
    "conditioning": {
        **CONDITIONING,
        "method": "decoder",
        "adapt_job": "job-1",
        "similarity": 0.8123,
        "recall": 1.0,
        "rolled_back": False,
        "runtime": {"as_trained": True, "served_similarity": 0.8, "trained_similarity": 0.81},
    },
    "decoder": {
        "current": "decoder/job-1/best-3",
        "previous": "decoder-instant",
        "runtime": {"decoder/job-1/best-3": {"as_trained": True}},
    },
}


def test_stored_meta_reads_and_writes_back_unchanged() -> None:
    for stored in (ENROLLED, ADAPTED):
        assert VoiceMeta.from_json(stored).to_json() == stored


def test_what_the_registry_reads_from_it() -> None:
    adapted = VoiceMeta.from_json(ADAPTED)
    assert adapted.conditioning is not None and adapted.conditioning.adaptation is not None
    assert adapted.conditioning.adaptation.adapt_job == "job-1"
    assert adapted.decoder.as_trained("decoder/job-1/best-3")
    assert not adapted.decoder.as_trained("decoder-instant")
    # an enrollment's conditioning has no adaptation keys in its JSON
    assert set(Conditioning.from_json(CONDITIONING).to_json()) == set(CONDITIONING)


def test_rows_written_before_the_typed_shape_still_read() -> None:
    # a row without meta (an erased voice, a test fixture) and the older one-key decoder record
    assert VoiceMeta.from_json({}) == VoiceMeta()
    assert VoiceMeta.from_json(None).conditioning is None
    old = VoiceMeta.from_json({**ENROLLED, "decoder": {"current": "decoder-instant"}})
    assert old.decoder == DecoderState(current="decoder-instant")
