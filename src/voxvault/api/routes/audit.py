"""``/v1/audit``: export the audit log as JSON Lines and verify its hash chain.

Tenancy: the chain is one global sequence (that is what makes it tamper-evident), so it cannot be split
per tenant without breaking verification. ``audit:read`` keys of the *operator* organisation (the one
created on first start, which runs the installation) export the whole chain and can re-verify it
themselves. Keys of any other organisation export only the entries about their organisation: those made
with one of its keys, about one of its keys, or naming it (``details.org_id``/``details.project_id``).
Their ``verify`` answer says whether the chain is intact, without the other tenants' details.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select

from voxvault.api.deps import AuditReader, VoxVaultDep
from voxvault.errors import VoxError
from voxvault.governance.audit import parse_anchor, parse_since
from voxvault.governance.keys import Principal
from voxvault.service import VoxVault
from voxvault.store.models import Project

router = APIRouter(prefix="/v1/audit", tags=["audit"])
NDJSON = "application/x-ndjson"


class ProblemOut(BaseModel):
    seq: int
    kind: str
    message: str | None = None


class VerificationOut(BaseModel):
    ok: bool
    checked: int
    head: str
    head_seq: int
    anchor: str
    problems: list[ProblemOut]


class ActorsOut(BaseModel):
    actors: dict[str, str]  # API key id -> the key's name


def _is_operator(vv: VoxVault, principal: Principal) -> bool:
    return bool(principal.org_id == vv.keys.operator_org_id())


def tenant_filter(vv: VoxVault, principal: Principal) -> Callable[[dict[str, Any]], bool]:
    """Which entries ``principal`` may read: all for the operator org, else its own."""
    if _is_operator(vv, principal):
        return lambda _entry: True
    keys = vv.keys.org_key_ids(principal.org_id)
    with vv.db.session() as s:
        projects = set(s.scalars(select(Project.id).where(Project.org_id == principal.org_id)))

    def mine(entry: dict[str, Any]) -> bool:
        details = entry.get("details") or {}
        return (
            entry.get("actor") in keys
            or entry.get("target") in keys
            or details.get("org_id") == principal.org_id
            or details.get("project_id") in projects
        )

    return mine


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}, "description": "One JSON entry per line, oldest first."}},
)
def export_audit(
    vv: VoxVaultDep,
    principal: AuditReader,
    since: Annotated[str | None, Query(max_length=64, description="Sequence number or ISO time.")] = None,
) -> StreamingResponse:
    """The audit log as JSON Lines: seq, ts, actor, action, target, details, prev_hash, hash."""
    since_seq, since_ts = parse_since(since)
    allowed = tenant_filter(vv, principal)
    entries = vv.audit.entries(since_seq=since_seq, since_ts=since_ts)

    def lines() -> Iterator[bytes]:
        for entry in entries:
            if allowed(entry):
                yield (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type=NDJSON)


@router.get("/actors", response_model=ActorsOut)
def audit_actors(vv: VoxVaultDep, principal: AuditReader) -> dict[str, Any]:
    """Names of the API keys that act in the log, so a reader sees a key's name beside its id.

    The operator organisation's readers get every key; others their organisation's keys only (the same
    keys whose entries they may read). Actors that are not keys (``cli``, none: the local operator) are
    not listed.
    """
    org_id = None if _is_operator(vv, principal) else principal.org_id
    return {"actors": {key.id: key.name for key in vv.keys.list(org_id)}}


@router.get("/verify", response_model=VerificationOut)
def verify_audit(
    vv: VoxVaultDep,
    principal: AuditReader,
    anchor: Annotated[
        str | None, Query(max_length=80, description="seq:hash from an earlier verify, kept elsewhere.")
    ] = None,
) -> dict[str, Any]:
    """Walk the whole chain; every problem names the entry's sequence number and what was done."""
    anchors = None
    if anchor:
        try:
            seq, digest = parse_anchor(anchor)
        except ValueError as exc:
            raise VoxError("invalid_anchor", str(exc), 422) from None
        anchors = {seq: digest}
    result = vv.audit.verify(anchors)
    return dict(result.as_dict(with_messages=_is_operator(vv, principal)))
