"""The error the security desk answers with when an action does not apply."""

from __future__ import annotations

from monitor.access.auth import Refused


class SecurityError(Refused):
    """An action that does not apply (answers 404, 409 or 422)."""
