"""One error type for every refusal a user can cause.

Each carries a stable machine-readable ``code`` (used by the HTTP layer as the JSON ``code`` field and by
the CLI as its message prefix) and an HTTP status, so bad input never becomes a 500 or a traceback.
"""

from __future__ import annotations

from typing import Any


class VoxError(Exception):
    """A refusal with a stable code, a human message and the HTTP status it maps to."""

    def __init__(self, code: str, message: str, status: int = 400, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"VoxError({self.code!r}, {self.message!r}, status={self.status})"
