"""Persistence: the relational database (``Database``, ``models``) and the blob store for payloads."""

from voxvault.store.blobs import BlobNotFound, BlobStore, LocalBlobStore, S3BlobStore, open_blob_store
from voxvault.store.db import Database
from voxvault.store.models import (
    ApiKey,
    AppendOnlyError,
    AuditLog,
    Base,
    Consent,
    Generation,
    Job,
    JobItem,
    Organization,
    Project,
    Voice,
    new_id,
    utcnow,
)

__all__ = [
    "ApiKey",
    "AppendOnlyError",
    "AuditLog",
    "Base",
    "BlobNotFound",
    "BlobStore",
    "Consent",
    "Database",
    "Generation",
    "Job",
    "JobItem",
    "LocalBlobStore",
    "Organization",
    "Project",
    "S3BlobStore",
    "Voice",
    "new_id",
    "open_blob_store",
    "utcnow",
]
