"""The API's one error: a status and a sentence, answered as ``{"error": {"status", "message"}}``."""
from __future__ import annotations


class ApiError(Exception):
    """A request the API answers with ``status`` and ``message`` (a sentence for a person)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict:
        return {"error": {"status": self.status, "message": self.message}}
