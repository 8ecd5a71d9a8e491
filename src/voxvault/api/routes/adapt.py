"""Fine-tuning a cloned voice: ``POST /v1/voices/{id}/adapt`` starts a background job,
``GET /v1/jobs/{id}`` reports its progress, ``POST /v1/voices/{id}/rollback`` restores the earlier style.

Jobs are tenant-scoped (another project's job is ``job_not_found``) and resume after a server restart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from voxvault.api.deps import AdaptServiceDep, VoicesReader, VoicesWriter, adapt_service
from voxvault.cloning.bias_layout import DEFAULT_L2


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service = await run_in_threadpool(adapt_service, app)
    await run_in_threadpool(service.resume_unfinished)
    yield
    await run_in_threadpool(service.stop)
    app.state.adapt = None


router = APIRouter(tags=["voices"], lifespan=_lifespan)
VoiceId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
JobId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")]


class AdaptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_iterations: int = Field(default=24, ge=1, le=500)
    max_seconds: float = Field(default=600.0, gt=0, le=3600)
    population: int = Field(default=4, ge=1, le=32)
    method: Literal["search", "gradient", "decoder"] = Field(
        default="decoder",
        description="decoder (default): Adam on the decoder's style projections, the closest clones; "
        "search: evolution strategy on the style; gradient: Adam on the style through PyTorch Kokoro",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=2,
        description="Adam's step (gradient: 0.2; decoder: 0.03 for biases, 0.001 for all weights)",
    )
    scope: Literal["bias", "all"] = Field(
        default="bias", description="decoder: adapt the style projections' biases (75 kB) or all (9.6 MB)"
    )
    l2: float = Field(default=DEFAULT_L2, ge=0, le=1, description="decoder: pull toward the shipped weights")
    sentences: (
        list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]] | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="what the voice speaks while it is fitted (default: three everyday sentences); each "
        "sentence costs a model pass per step, so more sentences make a slower job",
    )


class JobOut(BaseModel):
    job_id: str
    kind: str
    status: str = Field(description="queued, running, interrupted, succeeded or failed")
    voice_id: str | None = None
    progress: float = 0.0
    iteration: int = 0
    max_iterations: int = 0
    best: dict[str, float] | None = Field(default=None, description="Best objective, similarity, recall.")
    start: dict[str, float] | None = Field(default=None, description="The same scores for the start style.")
    stop_reason: str | None = None
    error: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@router.post("/v1/voices/{voice_id}/adapt", status_code=202, response_model=JobOut)
async def adapt_voice(
    service: AdaptServiceDep, voice_id: VoiceId, principal: VoicesWriter, body: AdaptIn | None = None
) -> Any:
    """Start fine-tuning the voice toward its speaker; poll ``GET /v1/jobs/{job_id}``."""
    options = (body or AdaptIn()).model_dump(exclude_none=True)
    job_id = await run_in_threadpool(
        service.submit, voice_id, principal.project_id, key_id=principal.key_id, options=options
    )
    service.start(job_id)
    status = await run_in_threadpool(service.status, job_id, principal.project_id)
    return JobOut(**status.to_json())


@router.get("/v1/jobs/{job_id}", response_model=JobOut)
async def get_job(service: AdaptServiceDep, job_id: JobId, principal: VoicesReader) -> Any:
    status = await run_in_threadpool(service.status, job_id, principal.project_id)
    return JobOut(**status.to_json())


@router.post("/v1/voices/{voice_id}/rollback")
async def rollback_voice(
    service: AdaptServiceDep, voice_id: VoiceId, principal: VoicesWriter
) -> dict[str, Any]:
    """Swap back to the style the voice had before its last adaptation."""
    voice = await run_in_threadpool(service.rollback, voice_id, principal.project_id, actor=principal.key_id)
    return voice.to_json()
