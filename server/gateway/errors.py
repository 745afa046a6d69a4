"""Errors of the gateway's order path, each with its HTTP status."""

from __future__ import annotations

import msgspec

__all__ = ["ApiError", "FieldProblem"]


class FieldProblem(msgspec.Struct, omit_defaults=True):
    """One thing wrong with a request: the FIX field name, why, and where in the JSON."""

    field: str
    reason: str
    path: str = ""


class ApiError(Exception):
    """An answer other than success: HTTP ``status``, a short ``code`` and the details."""

    def __init__(self, status: int, code: str, message: str,
                 errors: list[FieldProblem] | None = None, headers: list[tuple[str, str]] | None = None
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.headers = headers or []

    def body(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.code, "message": self.message}
        if self.errors:
            out["errors"] = [msgspec.structs.asdict(e) for e in self.errors]
        return out
