"""Initial schema: tenants, keys, consents, voices, generations, jobs and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id(name: str, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=64), **kw)


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.JSON(none_as_null=True), nullable=nullable)


def _blob_key(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=512), nullable=True)


def _sha(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=64), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "organizations",
        _id("id", nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )

    op.create_table(
        "projects",
        _id("id", nullable=False),
        _id("org_id", nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        _ts("created_at"),
        _json("lexicon"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f("fk_projects_org_id_organizations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_projects_org_id_name")),
    )
    op.create_index(op.f("ix_projects_org_id"), "projects", ["org_id"])

    op.create_table(
        "api_keys",
        _id("id", nullable=False),
        _id("org_id", nullable=False),
        _id("project_id", nullable=True),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        _json("scopes"),
        _json("voice_ids", nullable=True),
        _ts("created_at"),
        _ts("expires_at", nullable=True),
        _ts("revoked_at", nullable=True),
        _ts("last_used_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_api_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_api_keys_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_org_id"), "api_keys", ["org_id"])
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"])
    op.create_index(op.f("ix_api_keys_project_id"), "api_keys", ["project_id"])

    op.create_table(
        "consents",
        _id("id", nullable=False),
        _id("project_id", nullable=False),
        sa.Column("speaker_name", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("organization_name", sa.String(length=200), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("challenge_hash", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("challenge_expires_at"),
        _ts("expires_at", nullable=True),
        _json("scores", nullable=True),
        _blob_key("evidence_blob"),
        _sha("recording_sha256"),
        _ts("created_at"),
        _ts("verified_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'verified', 'refused', 'revoked', 'expired')",
            name=op.f("ck_consents_status"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_consents_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(op.f("ix_consents_project_id"), "consents", ["project_id"])
    op.create_index(op.f("ix_consents_recording_sha256"), "consents", ["recording_sha256"])
    op.create_index(op.f("ix_consents_status"), "consents", ["status"])

    op.create_table(
        "voices",
        _id("id", nullable=False),
        _id("project_id", nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("engine", sa.String(length=64), nullable=False),
        _id("consent_id", nullable=True),
        _blob_key("embedding_blob"),
        _blob_key("style_blob"),
        _blob_key("previous_style_blob"),
        _json("meta"),
        _json("retention", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("expires_at", nullable=True),
        _ts("revoked_at", nullable=True),
        _ts("erased_at", nullable=True),
        sa.CheckConstraint("kind IN ('preset', 'cloned')", name=op.f("ck_voices_kind")),
        sa.CheckConstraint(
            "status IN ('active', 'revoked', 'expired', 'erased', 'pending')", name=op.f("ck_voices_status")
        ),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"], name=op.f("fk_voices_consent_id_consents")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_voices_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voices")),
    )
    op.create_index(op.f("ix_voices_consent_id"), "voices", ["consent_id"])
    op.create_index(op.f("ix_voices_expires_at"), "voices", ["expires_at"])
    op.create_index(op.f("ix_voices_project_id"), "voices", ["project_id"])
    op.create_index(op.f("ix_voices_status"), "voices", ["status"])

    op.create_table(
        "generations",
        # Integer key handed out by the database; it is the watermark payload. AUTOINCREMENT on SQLite
        # guarantees a deleted row's number is never handed out again.
        sa.Column("watermark_id", sa.Integer(), autoincrement=True, nullable=False),
        _id("id", nullable=False),
        _id("voice_id", nullable=False),
        _id("key_id", nullable=True),
        _sha("text_sha256", nullable=False),
        sa.Column("text_chars", sa.Integer(), nullable=False),
        _sha("output_sha256"),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("watermark_id", name=op.f("pk_generations")),
        sa.UniqueConstraint("id", name=op.f("uq_generations_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_generations_created_at"), "generations", ["created_at"])
    op.create_index(op.f("ix_generations_key_id"), "generations", ["key_id"])
    op.create_index(op.f("ix_generations_output_sha256"), "generations", ["output_sha256"])
    op.create_index(op.f("ix_generations_voice_id"), "generations", ["voice_id"])

    op.create_table(
        "jobs",
        _id("id", nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _id("project_id", nullable=True),
        _id("key_id", nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        _json("spec"),
        _json("result", nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("heartbeat_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index(op.f("ix_jobs_project_id"), "jobs", ["project_id"])
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])

    op.create_table(
        "job_items",
        _id("job_id", nullable=False),
        _id("item_id", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _blob_key("output_key"),
        _sha("sha256"),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "item_id", name=op.f("pk_job_items")),
    )

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        _ts("ts"),
        _id("actor", nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        _json("details"),
        _sha("prev_hash", nullable=False),
        _sha("hash", nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"])
    op.create_index(op.f("ix_audit_log_target"), "audit_log", ["target"])
    op.create_index(op.f("ix_audit_log_ts"), "audit_log", ["ts"])
    _create_audit_guards()


def _create_audit_guards() -> None:
    """Make the audit log append-only in the database itself, not just in the ORM.

    A later SQLite batch migration that rebuilds ``audit_log`` drops these triggers and must recreate them.
    """
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    for table in (
        "audit_log",
        "job_items",
        "jobs",
        "generations",
        "voices",
        "consents",
        "api_keys",
        "projects",
        "organizations",
    ):
        op.drop_table(table)
