"""``/v1/organizations`` and ``/v1/projects``: tenants and their projects, over the API (audit finding 9).

* The **operator** organisation's admins (the organisation created on first start, which runs the
  installation) create organisations, each with a first project and, unless asked not to, a first
  admin key (its secret shown once, in the answer), and see every organisation.
* Any organisation's admins create projects in their own organisation and list its projects; another
  organisation's ids answer 404, as everywhere else.

Creations are audited (``org.created``, ``project.created``, ``key.created``) with the calling key as
actor. An admin key limited to some voices is not enough: it could otherwise widen its own reach.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from voxvault.api.deps import Admin, VoxVaultDep
from voxvault.api.schemas import KeyCreated
from voxvault.errors import VoxError
from voxvault.governance.keys import OrganizationInfo, Principal, ProjectInfo
from voxvault.service import VoxVault

router = APIRouter(tags=["tenants"])
Name = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    project_name: str = Field(default="default", min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    admin_key: bool = Field(default=True, description="Also create the organisation's first admin key.")


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Name
    organization_id: str | None = Field(
        default=None, max_length=64, description="Operator admins only: another organisation's id."
    )


class ProjectOut(BaseModel):
    id: str
    organization_id: str
    name: str
    created_at: dt.datetime

    @classmethod
    def of(cls, p: ProjectInfo) -> ProjectOut:
        return cls(id=p.id, organization_id=p.org_id, name=p.name, created_at=p.created_at)


class OrganizationOut(BaseModel):
    id: str
    name: str
    created_at: dt.datetime
    projects: list[ProjectOut]

    @classmethod
    def of(cls, o: OrganizationInfo) -> OrganizationOut:
        return cls(
            id=o.id, name=o.name, created_at=o.created_at, projects=[ProjectOut.of(p) for p in o.projects]
        )


class OrganizationCreated(OrganizationOut):
    admin_key: KeyCreated | None = Field(description="The first admin key; its secret is shown this once.")


class OrganizationsOut(BaseModel):
    organizations: list[OrganizationOut]


class ProjectsOut(BaseModel):
    projects: list[ProjectOut]


def _full_admin(principal: Principal) -> None:
    if principal.voice_ids is not None:
        raise VoxError("voice_not_allowed", "an admin key limited to some voices cannot manage tenants", 403)


def _operator(vv: VoxVault, principal: Principal) -> bool:
    return bool(principal.org_id == vv.keys.operator_org_id())


def _org_for(vv: VoxVault, principal: Principal, org_id: str | None) -> str:
    """The organisation a call acts on: the caller's own, or (operator admins) the one named."""
    if org_id is None or org_id == principal.org_id:
        return principal.org_id
    known = {o.id for o in vv.keys.organizations(org_id)}
    if not _operator(vv, principal) or org_id not in known:
        raise VoxError("org_not_found", "no such organisation", 404)
    return org_id


@router.post("/v1/organizations", status_code=201, response_model=OrganizationCreated)
def create_organization(body: OrganizationCreate, vv: VoxVaultDep, principal: Admin) -> OrganizationCreated:
    """Operator admins: a new tenant with its first project (and first admin key, shown once)."""
    _full_admin(principal)
    if not _operator(vv, principal):
        vv.audit.record(
            "access.denied",
            actor=principal.key_id,
            target="/v1/organizations",
            details={"reason": "operator_only", "method": "POST"},
        )
        raise VoxError("operator_only", "only the operator organisation's admins create organisations", 403)
    org_id, project_id = vv.keys.create_org_project(body.name, body.project_name, actor=principal.key_id)
    key = None
    if body.admin_key:
        created = vv.keys.create(
            org_id=org_id, project_id=project_id, scopes=["admin"], name="admin", actor=principal.key_id
        )
        key = KeyCreated.created(created)
    org = OrganizationOut.of(vv.keys.organizations(org_id)[0])
    return OrganizationCreated(**org.model_dump(), admin_key=key)


@router.get("/v1/organizations", response_model=OrganizationsOut)
def list_organizations(vv: VoxVaultDep, principal: Admin) -> OrganizationsOut:
    """Operator admins see every organisation; other admins their own."""
    orgs = vv.keys.organizations(None if _operator(vv, principal) else principal.org_id)
    return OrganizationsOut(organizations=[OrganizationOut.of(o) for o in orgs])


@router.post("/v1/projects", status_code=201, response_model=ProjectOut)
def create_project(body: ProjectCreate, vv: VoxVaultDep, principal: Admin) -> ProjectOut:
    """A new project in the caller's organisation (operator admins: in the one named)."""
    _full_admin(principal)
    org_id = _org_for(vv, principal, body.organization_id)
    project_id = vv.keys.create_project(org_id, body.name, actor=principal.key_id)
    project = next(p for p in vv.keys.organizations(org_id)[0].projects if p.id == project_id)
    return ProjectOut.of(project)


@router.get("/v1/projects", response_model=ProjectsOut)
def list_projects(
    vv: VoxVaultDep,
    principal: Admin,
    organization_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ProjectsOut:
    """The caller's organisation's projects (operator admins: any organisation's)."""
    org_id = _org_for(vv, principal, organization_id)
    orgs = vv.keys.organizations(org_id)
    return ProjectsOut(projects=[ProjectOut.of(p) for o in orgs for p in o.projects])
