"""Consent-verified enrollment end to end through HTTP: the genuine path, every refusal, the lifecycle.

The speaker who reads the consent script is the embedded engine's ``kumo`` preset (a real person's voice
cannot be made to read a fresh one-time code); the refusals use the real speakers in ../shared/testdata.
Everything runs in its own tenant so other tests' voice lists are unaffected. One genuine enrollment is
shared by the lifecycle tests, which run in file order: speech, expiry and renewal, revocation, erasure.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import ScriptHeard
from tests.conftest import read_aloud

from voxvault.audio.io import decode, encode
from voxvault.store.models import Consent, Voice, utcnow
from voxvault.voices.lifecycle import aad, array_from_bytes, blob_key

SPEAKERS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "speakers"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SPEAKERS.is_dir(), reason=f"real speech clips not found at {SPEAKERS}"),
]

SPEAKER = "kumo"
SAMPLE_TEXTS = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Every morning I walk to the market and buy fresh bread for breakfast.",
    "She said the weather would be cold and windy for the rest of the week.",
    "We planted tomatoes and beans in the garden behind the old house.",
)
CONSENT = {
    "speaker_name": "Sam Taylor",
    "organization": "Acme Studios",
    "purpose": "audiobook narration",
    "expires_in_days": 30,
}


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    return encode(np.asarray(samples, dtype=np.float32), rate, "wav")


def real_clip(name: str) -> tuple[np.ndarray, int]:
    audio = decode(SPEAKERS / f"en_{name}.wav", max_bytes=10**8, max_seconds=60)
    return audio.samples, audio.sample_rate


@dataclass
class Tenant:
    client: TestClient
    project_id: str
    vv: Any
    counter: int = 0

    def consent(self, **overrides: Any) -> dict[str, Any]:
        r = self.client.post("/v1/consents", json={**CONSENT, **overrides})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def read_script(self, script: str, voice: str = SPEAKER) -> bytes:
        samples, rate = self.speak_as(script, voice)
        return wav_bytes(samples, rate)

    def speak_as(self, text: str, voice: str) -> tuple[np.ndarray, int]:
        # Without the watermark: a live speaker's reading (marked audio is refused as synthetic_audio).
        return read_aloud(self.vv, text, voice)

    def unique_recording(self) -> bytes:
        """A recording that passes the quality gates and was never sent (different bytes every call)."""
        self.counter += 1
        samples, rate = real_clip("andrew")
        return wav_bytes(samples * (0.9 - 0.01 * self.counter), rate)

    def enroll(
        self, ticket: dict[str, Any], recording: bytes, samples: list[tuple[str, bytes]], **form: str
    ) -> Any:
        files = [("recording", ("consent.wav", recording, "audio/wav"))]
        files += [("samples", (name, data, "application/octet-stream")) for name, data in samples]
        data = {"challenge": ticket["challenge"], "name": "Sam", **form}
        return self.client.post(f"/v1/consents/{ticket['consent_id']}/enroll", data=data, files=files)


@pytest.fixture(scope="module")
def tenant(vv: Any, app: Any) -> Tenant:
    vv.keys.ensure_default_project()  # the session client's tenant exists first, so it is not this one
    org_id, project_id = vv.keys.create_org_project("consent flow tests")
    key = vv.keys.create(org_id=org_id, project_id=project_id, scopes=["admin"], name="consent tests").secret
    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    return Tenant(client=client, project_id=project_id, vv=vv)


@pytest.fixture(scope="module")
def samples(tenant: Tenant) -> list[tuple[str, bytes]]:
    """Four sentences in the speaker's voice (about 16 s of speech), as mp3 and wav files."""
    out = []
    for i, text in enumerate(SAMPLE_TEXTS):
        audio, rate = tenant.speak_as(text, SPEAKER)
        fmt = "mp3" if i % 2 == 0 else "wav"
        out.append((f"sample{i}.{fmt}", encode(audio, rate, fmt)))
    return out


@dataclass
class Enrolled:
    voice: dict[str, Any]
    ticket: dict[str, Any]
    recording: bytes


@pytest.fixture(scope="module")
def enrolled(tenant: Tenant, samples: list[tuple[str, bytes]]) -> Enrolled:
    ticket = tenant.consent()
    recording = tenant.read_script(ticket["script"])
    r = tenant.enroll(ticket, recording, samples)
    assert r.status_code == 201, r.text
    return Enrolled(voice=r.json(), ticket=ticket, recording=recording)


# -- state snapshots: a refusal must leave no voice row and no blob ----------------------------------------
def snapshot(tenant: Tenant) -> tuple[list[str], int]:
    vv = tenant.vv
    with vv.db.session() as s:
        voices = s.query(Voice).filter(Voice.project_id == tenant.project_id).count()
    return sorted(vv.blobs.list("")), voices


def consent_row(tenant: Tenant, consent_id: str) -> Consent:
    with tenant.vv.db.session() as s:
        row = s.get(Consent, consent_id)
        assert row is not None
        return row


def refusal_code(row: Consent) -> str:
    return str((row.scores or {}).get("refusal", {}).get("code"))


def assert_refused(
    tenant: Tenant,
    response: Any,
    status: int,
    code: str,
    before: tuple[list[str], int],
    ticket: dict[str, Any],
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert snapshot(tenant) == before, "a refused enrollment left a voice row or a blob behind"
    row = consent_row(tenant, ticket["consent_id"])
    assert row.evidence_blob is None
    return dict(error)


# -- the consent request ------------------------------------------------------------------------------------
def test_consent_script_names_speaker_organisation_purpose_and_code(tenant: Tenant) -> None:
    ticket = tenant.consent()
    script = ticket["script"]
    for part in ("Sam Taylor", "Acme Studios", "audiobook narration", ticket["challenge"]):
        assert part in script
    words = ticket["challenge"].split()
    assert len(words) == 5 and len(set(words)) == 5
    expires = dt.datetime.fromisoformat(ticket["challenge_expires_at"])
    assert dt.timedelta(minutes=9) < expires - utcnow() <= dt.timedelta(minutes=10)
    shown = tenant.client.get(f"/v1/consents/{ticket['consent_id']}").json()
    assert shown["status"] == "pending"
    assert ticket["challenge"] not in json.dumps(shown)  # the code is never shown again ...
    row = consent_row(tenant, ticket["consent_id"])
    assert (
        ticket["challenge"] not in row.script and ticket["challenge"] not in row.challenge_hash
    )  # ... nor kept


def test_two_codes_differ(tenant: Tenant) -> None:
    assert tenant.consent()["challenge"] != tenant.consent()["challenge"]


@pytest.mark.parametrize(
    "body",
    [
        {**CONSENT, "speaker_name": "  "},
        {**CONSENT, "expires_in_days": None},
        {k: v for k, v in CONSENT.items() if k != "purpose"},
        {**CONSENT, "expires_in_days": 99999},
        {**CONSENT, "expires_in_days": None, "expires_at": "2001-01-01T00:00:00Z"},
    ],
)
def test_bad_consent_requests_are_refused(tenant: Tenant, body: dict[str, Any]) -> None:
    r = tenant.client.post("/v1/consents", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["code"] in {"invalid_consent_request", "missing_field"}


# -- the genuine enrollment ---------------------------------------------------------------------------------
def test_genuine_enrollment_creates_a_voice_that_speaks(tenant: Tenant, enrolled: Enrolled) -> None:
    voice = enrolled.voice
    assert voice["kind"] == "cloned" and voice["status"] == "active"
    assert voice["consent"]["status"] == "verified"
    assert voice["expires_at"] == voice["consent"]["expires_at"]
    scores = voice["scores"]
    assert scores["script"]["code_recall"] >= 0.6
    assert scores["speaker_similarity"] >= scores["thresholds"]["same_speaker_threshold"]
    assert scores["total_speech_s"] >= 10
    assert voice["retention"]["samples"]["kept"] is False  # raw samples are gone ...
    assert voice["retention"]["consent_evidence"]["kept"] is True  # ... the consent evidence stays
    assert voice["conditioning"]["weights"]  # blended from the nearest presets
    assert voice["conditioning"]["decoder_step"] is True  # and its own decoder biases (instant step)
    assert 0.5 <= voice["conditioning"]["pitch_factor"] <= 2.0  # at its speaker's pitch (cloning/pitch.py)
    assert voice["retention"]["decoder"] == {"kept": True, "until": "erasure"}
    r = tenant.client.post(
        "/v1/audio/speech",
        json={"input": "Hello from my new voice.", "voice": voice["voice_id"], "response_format": "wav"},
    )
    assert r.status_code == 200, r.text
    assert len(r.content) > 24_000
    listed = tenant.client.get("/v1/voices").json()["voices"]
    assert any(v["voice_id"] == voice["voice_id"] and v["kind"] == "cloned" for v in listed)


def test_payloads_are_sealed_and_evidence_is_complete(tenant: Tenant, enrolled: Enrolled) -> None:
    vv = tenant.vv
    vid = enrolled.voice["voice_id"]
    for what in ("embedding", "style"):
        sealed = vv.blobs.get(blob_key(vid, what))
        plain = vv.envelope.open(sealed, aad(vid, what))
        assert plain[-64:] not in sealed  # encrypted at rest
    cid = enrolled.ticket["consent_id"]
    evidence = vv.envelope.open(vv.blobs.get(blob_key(vid, f"consents/{cid}")), aad(vid, f"consents/{cid}"))
    with zipfile.ZipFile(io.BytesIO(evidence)) as zf:
        record = json.loads(zf.read("consent.json"))
        assert zf.read("recording.wav") == enrolled.recording
    assert record["challenge"] == enrolled.ticket["challenge"]
    assert record["script"] == enrolled.ticket["script"]
    assert record["purpose"] == "audiobook narration" and record["expires_at"]
    assert record["scores"]["speaker_similarity"] == enrolled.voice["scores"]["speaker_similarity"]
    actions = [e["action"] for e in vv.audit.entries() if e["target"] in (cid, vid)]
    assert {"consent.created", "consent.verified", "voice.created"} <= set(actions)


def test_other_tenants_cannot_see_or_touch_the_voice(
    tenant: Tenant, enrolled: Enrolled, client: TestClient
) -> None:
    vid = enrolled.voice["voice_id"]
    assert client.get(f"/v1/voices/{vid}").status_code == 404
    assert client.get(f"/v1/consents/{enrolled.ticket['consent_id']}").status_code == 404
    assert client.delete(f"/v1/voices/{vid}").status_code == 404
    r = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": vid, "response_format": "pcm"})
    assert r.status_code == 404
    assert _speak(tenant, vid).status_code == 200  # untouched for its own tenant


# -- refusals -----------------------------------------------------------------------------------------------
def test_a_spent_code_is_refused(
    tenant: Tenant, enrolled: Enrolled, samples: list[tuple[str, bytes]]
) -> None:
    r = tenant.enroll(enrolled.ticket, tenant.unique_recording(), samples)
    assert r.status_code == 409 and r.json()["error"]["code"] == "challenge_used"


def test_an_expired_code_is_refused(tenant: Tenant, samples: list[tuple[str, bytes]]) -> None:
    ticket = tenant.consent()
    with tenant.vv.db.session() as s:
        s.get(Consent, ticket["consent_id"]).challenge_expires_at = utcnow() - dt.timedelta(seconds=1)
    before = snapshot(tenant)
    r = tenant.enroll(ticket, tenant.unique_recording(), samples)
    assert_refused(tenant, r, 410, "challenge_expired", before, ticket)


def test_a_wrong_code_is_refused_without_spending_the_consent(
    tenant: Tenant, samples: list[tuple[str, bytes]]
) -> None:
    ticket = tenant.consent()
    before = snapshot(tenant)
    r = tenant.enroll(
        {**ticket, "challenge": "apple banana river garden yellow"}, tenant.unique_recording(), samples
    )
    assert_refused(tenant, r, 422, "challenge_mismatch", before, ticket)
    assert consent_row(tenant, ticket["consent_id"]).status == "pending"


def test_a_replayed_recording_is_refused(
    tenant: Tenant, enrolled: Enrolled, samples: list[tuple[str, bytes]]
) -> None:
    ticket = tenant.consent()
    before = snapshot(tenant)
    r = tenant.enroll(ticket, enrolled.recording, samples)
    assert_refused(tenant, r, 409, "recording_replayed", before, ticket)
    row = consent_row(tenant, ticket["consent_id"])
    assert row.status == "refused" and refusal_code(row) == "recording_replayed"


def test_a_reencoded_earlier_recording_says_the_wrong_code(
    tenant: Tenant, enrolled: Enrolled, samples: list[tuple[str, bytes]]
) -> None:
    ticket = tenant.consent()
    old = decode(enrolled.recording, max_bytes=10**8, max_seconds=60)
    before = snapshot(tenant)
    r = tenant.enroll(ticket, encode(old.samples, old.sample_rate, "flac"), samples)
    error = assert_refused(tenant, r, 422, "challenge_not_spoken", before, ticket)
    assert error["details"]["measure"] == "code_recall"


def test_another_script_is_refused(tenant: Tenant, samples: list[tuple[str, bytes]]) -> None:
    ticket = tenant.consent()
    before = snapshot(tenant)
    r = tenant.enroll(ticket, tenant.unique_recording(), samples)  # a real person saying something else
    assert_refused(tenant, r, 422, "script_mismatch", before, ticket)
    row = consent_row(tenant, ticket["consent_id"])
    assert (
        refusal_code(row) == "script_mismatch"
        and "statement_recall" in (row.scores or {})["checks"]["script"]
    )


def test_the_script_read_in_the_wrong_order_is_refused(
    tenant: Tenant, samples: list[tuple[str, bytes]]
) -> None:
    ticket = tenant.consent()
    statement, code = ticket["script"].split(" My one-time code is ")
    swapped = f"My one-time code is {code} {statement}"
    before = snapshot(tenant)
    r = tenant.enroll(ticket, tenant.read_script(swapped), samples)
    assert_refused(tenant, r, 422, "script_wrong_order", before, ticket)


def test_a_different_speaker_in_the_samples_is_refused(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tenant.vv.enrollment, "_heard_checker", lambda: ScriptHeard())
    ticket = tenant.consent()
    recording = tenant.read_script(ticket["script"])
    clip, rate = real_clip("brandon")  # another person (about 6 s), twice with a small level change
    other = [("brandon1.wav", wav_bytes(clip, rate)), ("brandon2.wav", wav_bytes(clip * 0.8, rate))]
    before = snapshot(tenant)
    r = tenant.enroll(ticket, recording, other)
    error = assert_refused(tenant, r, 422, "speaker_mismatch", before, ticket)
    assert error["details"]["measure"] == "speaker_similarity"
    assert error["details"]["value"] < error["details"]["threshold"]


def test_two_speakers_in_one_sample_are_refused_naming_the_file(
    tenant: Tenant, samples: list[tuple[str, bytes]]
) -> None:
    ticket = tenant.consent()
    a, rate = real_clip("andrew")
    b, _ = real_clip("ashley")
    mixed = ("dialogue.wav", wav_bytes(np.concatenate([a, b]), rate))
    before = snapshot(tenant)
    r = tenant.enroll(ticket, tenant.unique_recording(), [samples[0], mixed])
    error = assert_refused(tenant, r, 422, "multiple_speakers", before, ticket)
    assert error["details"]["file"] == "samples[1] (dialogue.wav)"


def _tone(seconds: float, rate: int = 24_000) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


@pytest.mark.parametrize(
    ("make", "status", "code", "measure"),
    [
        (lambda s: [s[0]], 422, "too_little_speech", "speech_s"),
        (lambda s: [s[0], ("silence.wav", wav_bytes(_tone(12), 24_000))], 422, "no_speech", "speech_s"),
        (
            lambda s: [
                (
                    "noise.wav",
                    wav_bytes(
                        np.random.default_rng(1).normal(0, 0.1, 24_000 * 12).astype(np.float32), 24_000
                    ),
                )
            ],
            422,
            "no_speech",
            "speech_s",
        ),
        (
            lambda s: [s[0], ("broken.mp3", s[0][1][:800] + bytes(range(256)) * 40)],
            None,
            "invalid_audio",
            None,
        ),
        (lambda s: [("notes.wav", b"%PDF-1.4\n" + b"not audio at all " * 200)], 415, "invalid_audio", None),
    ],
    ids=["too-little-speech", "silence", "noise-only", "corrupt-file", "not-audio"],
)
def test_bad_samples_are_refused_naming_file_and_measure(
    tenant: Tenant,
    samples: list[tuple[str, bytes]],
    make: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
    status: int | None,
    code: str,
    measure: str | None,
) -> None:
    ticket = tenant.consent()
    files = make(samples)
    before = snapshot(tenant)
    r = tenant.enroll(ticket, tenant.unique_recording(), files)
    # A broken file is 415 when it is not recognisable as audio at all, 422 when its frames are broken.
    error = assert_refused(tenant, r, status or r.status_code, code, before, ticket)
    assert r.status_code in (415, 422)
    assert "samples[" in error["details"]["file"]
    if measure:
        assert error["details"]["measure"] == measure
    row = consent_row(tenant, ticket["consent_id"])
    assert row.status == "refused" and refusal_code(row) == code


def test_quality_refusals_name_the_measure(tenant: Tenant, samples: list[tuple[str, bytes]]) -> None:
    clip, rate = real_clip("karen")
    rng = np.random.default_rng(2)
    loud = np.clip(clip * 12, -1, 1)
    noisy = clip + rng.normal(0, float(np.sqrt(np.mean(clip**2))), clip.size).astype(np.float32)
    cases = [
        ("clipped.wav", wav_bytes(loud, rate), "clipping", "clipped_fraction"),
        ("noisy.wav", wav_bytes(np.clip(noisy, -1, 1), rate), "low_snr", "snr_db"),
        ("phone.wav", encode(clip, rate, "wav", out_sample_rate=8000), "low_sample_rate", "sample_rate"),
    ]
    for name, data, code, measure in cases:
        ticket = tenant.consent()
        before = snapshot(tenant)
        r = tenant.enroll(ticket, tenant.unique_recording(), [*samples, (name, data)])
        error = assert_refused(tenant, r, 422, code, before, ticket)
        assert error["details"]["measure"] == measure and name in error["details"]["file"]


def _aac_hours(hours: float) -> bytes:
    """A real long recording made cheaply: ADTS AAC is a plain run of frames, so a short file repeats."""
    ten_seconds = encode(_tone(10, 8000), 8000, "aac", bitrate=8000)
    return ten_seconds * int(hours * 360)


def test_a_three_hour_recording_is_refused_early(tenant: Tenant, samples: list[tuple[str, bytes]]) -> None:
    ticket = tenant.consent()
    long = _aac_hours(3)
    assert len(long) < tenant.vv.settings.max_upload_bytes
    before = snapshot(tenant)
    r = tenant.client.post(
        f"/v1/consents/{ticket['consent_id']}/enroll",
        data={"challenge": ticket["challenge"]},
        files=[("recording", ("long.aac", long, "audio/aac")), ("samples", samples[0])],
    )
    error = assert_refused(tenant, r, 413, "audio_too_long", before, ticket)
    assert error["details"]["file"] == "recording"


def test_a_500_mb_upload_is_refused_before_it_is_read(tenant: Tenant, live_server: str, vv: Any) -> None:
    ticket = tenant.consent()
    auth = tenant.client.headers["authorization"]
    host, port = live_server.removeprefix("http://").split(":")
    head = (
        f"POST /v1/consents/{ticket['consent_id']}/enroll HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {auth}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {500 * 1024 * 1024}\r\n\r\n"
    )
    before = snapshot(tenant)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head.encode())  # and not one byte of the body: the answer must come anyway
        reply = b""
        while not reply.endswith(b"}}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 413 " in status_line
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "upload_too_large"
    assert snapshot(tenant) == before
    assert consent_row(tenant, ticket["consent_id"]).status == "pending"  # nothing was spent


def test_an_upload_without_length_is_counted_and_cut_off(vv: Any, tmp_path: Path) -> None:
    from voxvault.api.app import create_app
    from voxvault.config import Settings
    from voxvault.service import VoxVault

    small = VoxVault(
        Settings(data_dir=tmp_path, cache_dir=vv.settings.resolved_cache_dir, max_upload_bytes=100_000)
    )
    small.engines = vv.engines
    org, project = small.keys.create_org_project("small")
    key = small.keys.create(org_id=org, project_id=project, scopes=["admin"]).secret
    client = TestClient(create_app(vv=small, warm_up=False), headers={"Authorization": f"Bearer {key}"})
    ticket = client.post("/v1/consents", json=CONSENT).json()

    def body() -> Any:
        yield b'--x\r\nContent-Disposition: form-data; name="recording"; filename="a.wav"\r\n\r\n'
        for _ in range(10):
            yield b"\0" * 50_000

    r = client.post(
        f"/v1/consents/{ticket['consent_id']}/enroll",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "upload_too_large"
    assert [k for k in small.blobs.list("") if not k.startswith("audit/")] == []  # audit key: finding 5


# -- lifecycle (file order: these run after the refusals, on the shared enrolled voice) ----------------------
def _speak(tenant: Tenant, voice_id: str) -> Any:
    return tenant.client.post(
        "/v1/audio/speech", json={"input": "Still here?", "voice": voice_id, "response_format": "pcm"}
    )


def test_expiry_stops_synthesis_and_renewal_takes_a_new_recording(tenant: Tenant, enrolled: Enrolled) -> None:
    vid = enrolled.voice["voice_id"]
    with tenant.vv.db.session() as s:
        s.get(Voice, vid).expires_at = utcnow() - dt.timedelta(seconds=1)
    r = _speak(tenant, vid)
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_expired"
    assert tenant.client.get(f"/v1/voices/{vid}").json()["status"] == "expired"

    ticket = tenant.consent(expires_in_days=60)
    recording = tenant.read_script(ticket["script"])
    r = tenant.client.post(
        f"/v1/consents/{ticket['consent_id']}/verify",
        data={"challenge": ticket["challenge"], "voice_id": vid},
        files=[("recording", ("renew.wav", recording, "audio/wav"))],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "verified" and r.json()["voice_id"] == vid
    r = tenant.client.patch(f"/v1/voices/{vid}", json={"consent_id": ticket["consent_id"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["consent"]["consent_id"] == ticket["consent_id"]
    assert _speak(tenant, vid).status_code == 200


def test_revocation_stops_synthesis_at_once(tenant: Tenant, enrolled: Enrolled) -> None:
    vid = enrolled.voice["voice_id"]
    assert _speak(tenant, vid).status_code == 200
    r = tenant.client.patch(f"/v1/voices/{vid}", json={"status": "revoked"})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = _speak(tenant, vid)
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_revoked"


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _windows(data: bytes, size: int = 64, count: int = 4) -> list[bytes]:
    """Distinctive slices of a payload (no runs of silence: zeros are everywhere in a database file)."""
    if len(data) <= size:
        return [data]
    starts = np.linspace(0, len(data) - size, 64).astype(int)
    varied = [data[i : i + size] for i in starts if len(set(data[i : i + size])) >= size // 2]
    assert varied, "payload has no distinctive slice"
    return varied[:: max(1, len(varied) // count)][:count]


def test_erasure_leaves_no_bytes_of_embedding_style_or_audio(
    tenant: Tenant, enrolled: Enrolled, samples: list[tuple[str, bytes]]
) -> None:
    vv = tenant.vv
    vid = enrolled.voice["voice_id"]
    keys = list(vv.blobs.list(f"voices/{vid}/"))
    assert {blob_key(vid, "embedding"), blob_key(vid, "style"), blob_key(vid, "decoder/instant")} <= set(keys)
    sealed = [vv.blobs.get(k) for k in keys]
    embedding = array_from_bytes(
        vv.envelope.open(vv.blobs.get(blob_key(vid, "embedding")), aad(vid, "embedding"))
    )
    style = array_from_bytes(vv.envelope.open(vv.blobs.get(blob_key(vid, "style")), aad(vid, "style")))
    pcm = decode(enrolled.recording, max_bytes=10**8, max_seconds=60).samples
    needles = [
        *_windows(embedding.astype("<f4").tobytes()),
        *_windows(style.astype("<f4").tobytes()[1024:]),  # skip leading rows shared with presets' zeros
        *_windows(enrolled.recording[44:]),
        *_windows(pcm.astype("<f4").tobytes()),
        *[w for _, data in samples for w in _windows(data[200:])],
        *[w for blob in sealed for w in _windows(blob[100:])],
    ]
    root = Path(vv.settings.data_dir)
    # The scan can see the payloads before erasure (so it is able to find them) ...
    before = b"".join(p.read_bytes() for p in _files_under(root / "blobs"))
    assert any(w in before for w in _windows(sealed[0][100:]))

    r = tenant.client.delete(f"/v1/voices/{vid}")
    assert r.status_code == 200 and r.json()["status"] == "erased"
    assert list(vv.blobs.list(f"voices/{vid}/")) == []

    # ... and finds none of them after, in any file: blobs, database, WAL, keys.
    for path in _files_under(root):
        content = path.read_bytes()
        found = [i for i, w in enumerate(needles) if w in content]
        assert not found, f"{path.relative_to(root)} still holds erased bytes (needles {found})"
    with vv.db.session() as s:
        row = s.get(Voice, vid)
        assert row.status == "erased" and row.embedding_blob is None and row.style_blob is None
        consent = s.get(Consent, enrolled.ticket["consent_id"])
        assert consent.evidence_blob is None and consent.speaker_name == "[erased]"
    assert tenant.client.get(f"/v1/voices/{vid}").status_code == 404
    r = _speak(tenant, vid)
    assert r.status_code == 404 and r.json()["error"]["code"] == "voice_not_found"
    assert all(v["voice_id"] != vid for v in tenant.client.get("/v1/voices").json()["voices"])
    tombstone = [e for e in vv.audit.entries() if e["target"] == vid and e["action"] == "voice.erased"]
    assert len(tombstone) == 1 and tombstone[0]["details"]["blobs_deleted"] >= 3
