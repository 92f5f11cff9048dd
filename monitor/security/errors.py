"""The error the security desk answers with when an action does not apply."""

from __future__ import annotations


class SecurityError(Exception):
    """An action that does not apply (answers 404, 409 or 422)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status
