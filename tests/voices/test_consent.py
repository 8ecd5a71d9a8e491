"""Consent requests: the script, the one-time code, its hash, single use and expiry (real database)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from pocketsphinx import Decoder

from voxvault.errors import VoxError
from voxvault.governance.audit import AuditTrail
from voxvault.store.db import Database
from voxvault.store.models import Consent, utcnow
from voxvault.voices.consent import (
    CHALLENGE_LENGTH,
    CHALLENGE_WORDS,
    ConsentService,
    ConsentTicket,
    challenge_digest,
    make_challenge,
)
from voxvault.voices.script_check import in_order_recall


@pytest.fixture
def service(tmp_path: Path) -> ConsentService:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.migrate()
    from voxvault.governance.keys import KeyService

    KeyService(db).ensure_default_project()
    return ConsentService(db, AuditTrail(db))


def project(service: ConsentService) -> str:
    from voxvault.governance.keys import KeyService

    return KeyService(service.db).ensure_default_project()[1]


def create(service: ConsentService, **kw: Any) -> ConsentTicket:
    args: dict[str, Any] = {
        "project_id": project(service),
        "speaker_name": "Ada Lovelace",
        "organization": "Analytical Engines Ltd",
        "purpose": "reading lecture notes",
        "expires_in_days": 30,
    }
    args.update(kw)
    return service.create(**args)


def test_code_words_are_distinct_and_known_to_the_recogniser() -> None:
    assert len(set(CHALLENGE_WORDS)) == len(CHALLENGE_WORDS) >= 32
    decoder = Decoder(loglevel="FATAL")
    assert [w for w in CHALLENGE_WORDS if decoder.lookup_word(w) is None] == []
    codes = {tuple(make_challenge()) for _ in range(200)}
    assert len(codes) == 200  # about 26 bits each: no repeats in a small draw
    assert all(len(set(c)) == CHALLENGE_LENGTH for c in codes)


def test_the_script_names_everything_and_the_database_keeps_no_code(service: ConsentService) -> None:
    ticket = create(service)
    assert ticket.script.startswith("I, Ada Lovelace, consent to Analytical Engines Ltd creating a synthetic")
    assert ticket.script.endswith(f"My one-time code is {ticket.challenge}.")
    row = service.get(ticket.consent_id, None)
    assert ticket.challenge not in row.script and "<one-time code>" in row.script
    assert row.challenge_hash == challenge_digest(row.id, ticket.challenge)
    assert row.challenge_hash != challenge_digest("another-consent", ticket.challenge)
    service.check_challenge(row, ticket.challenge.upper())
    with pytest.raises(VoxError) as info:
        service.check_challenge(row, "apple banana river garden yellow")
    assert info.value.code == "challenge_mismatch"


@pytest.mark.parametrize(
    "kw",
    [
        {"speaker_name": ""},
        {"purpose": "x" * 400},
        {"organization": "<script>"},
        {"expires_in_days": None},
        {"expires_in_days": 5000},
        {"expires_in_days": None, "expires_at": dt.datetime(2001, 1, 1, tzinfo=dt.UTC)},
        {"expires_in_days": None, "expires_at": dt.datetime(2031, 1, 1)},
    ],
)
def test_bad_requests_are_refused(service: ConsentService, kw: dict[str, Any]) -> None:
    with pytest.raises(VoxError) as info:
        create(service, **kw)
    assert info.value.code == "invalid_consent_request" and info.value.status == 422


def test_a_code_is_spent_once(service: ConsentService) -> None:
    ticket = create(service)
    cid = ticket.consent_id
    service.check_open(cid, None)
    assert service.claim(cid, "a" * 64) is True
    assert service.claim(cid, "b" * 64) is False
    with pytest.raises(VoxError) as info:
        service.check_open(cid, None)
    assert (info.value.code, info.value.status) == ("challenge_used", 409)
    assert service.seen_before("a" * 64, exclude="other") and not service.seen_before("a" * 64, exclude=cid)


def test_an_expired_code_is_refused_and_marked(service: ConsentService) -> None:
    ticket = create(service)
    cid = ticket.consent_id
    with service.db.session() as s:
        row = s.get(Consent, cid)
        assert row is not None
        row.challenge_expires_at = utcnow() - dt.timedelta(seconds=1)
    with pytest.raises(VoxError) as info:
        service.check_open(cid, None)
    assert (info.value.code, info.value.status) == ("challenge_expired", 410)
    assert service.get(cid, None).status == "expired"


def test_other_projects_consents_do_not_exist(service: ConsentService) -> None:
    ticket = create(service)
    with pytest.raises(VoxError) as info:
        service.get(ticket.consent_id, "another-project")
    assert info.value.status == 404


def test_in_order_recall() -> None:
    code = ["apple", "river", "tiger", "lemon", "ocean"]
    assert in_order_recall(code, code) == 1.0
    assert in_order_recall(code, ["my", "apple", "tiger", "ocean"]) == 0.6
    assert in_order_recall(code, list(reversed(code))) == 0.2
    assert in_order_recall(code, []) == 0.0
