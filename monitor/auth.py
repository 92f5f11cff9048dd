"""API access: bearer tokens with roles, permissions per role, problem+json errors, and the audit log.

Tokens come from the config (the token by secret reference, or only its SHA-256). A request without
a token has the `auth.anonymous` role (viewer by default, or nothing); a wrong token is a 401 even
where anonymous access would be enough, so a typo never silently downgrades. Every attempt to
change something is written to the audit log: who, what, on which object, from where, and whether
it was allowed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from monitor.clock import Clock
from monitor.config.response_model import Auth
from monitor.store.base import Store
from monitor.store.records import AuditEntry

PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "incident.write", "maintenance.write", "notice.write", "config.reload"}),
    "security": frozenset(
        {"read", "incident.write", "maintenance.write", "notice.write", "config.reload", "security.approve"}
    ),
    "admin": frozenset(
        {
            "read",
            "incident.write",
            "maintenance.write",
            "notice.write",
            "config.reload",
            "security.approve",
            "audit.read",
            "availability.correct",
        }
    ),
    "alertmanager": frozenset({"alerts.ingest"}),
    "ids": frozenset({"security.ingest"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str | None  # None: no access at all

    def may(self, permission: str) -> bool:
        return self.role is not None and permission in PERMISSIONS.get(self.role, frozenset())


ANONYMOUS_NONE = Principal("anonymous", None)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, auth: Auth) -> None:
        self.anonymous = Principal("anonymous", None if auth.anonymous == "none" else auth.anonymous)
        self._by_digest: dict[str, Principal] = {}
        for token in auth.tokens:
            digest = token.token_sha256 or token_digest(token.token.get_secret_value())  # type: ignore[union-attr]
            self._by_digest[digest] = Principal(token.name, token.role)

    def principal(self, authorization: str | None) -> Principal | None:
        """The caller; None when a token was given but is not valid."""
        if not authorization:
            return self.anonymous
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self._by_digest.get(token_digest(token.strip()))


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    """An RFC 9457 problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


class ProblemError(Exception):
    def __init__(self, status: int, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.response = problem(status, title, detail, **extra)


class Guard:
    """Checks permissions and writes the audit log for the API handlers."""

    def __init__(self, tokens: Callable[[], Tokens], store: Store, clock: Clock) -> None:
        self._tokens = tokens
        self.store = store
        self.clock = clock

    def caller(self, request: web.Request) -> Principal | None:
        return self._tokens().principal(request.headers.get("Authorization"))

    async def audit(
        self, request: web.Request, who: Principal | None, action: str, outcome: str, obj: str | None = None,
        **detail: Any,
    ) -> None:  # fmt: skip
        entry = AuditEntry(
            at=self.clock.now(),
            actor=who.name if who else "invalid-token",
            role=who.role if who else None,
            action=action,
            outcome=outcome,
            object=obj,
            source=request.remote,
            detail=detail,
        )
        await self.store.audit(entry)

    async def require(
        self, request: web.Request, permission: str, action: str | None = None, obj: str | None = None
    ) -> Principal:
        """The caller if allowed; otherwise a 401/403 problem (audited when `action` names a write)."""
        who = self.caller(request)
        if who is None or who.role is None:
            if action:
                await self.audit(request, who, action, "unauthenticated", obj)
            title = "invalid token" if who is None else "authentication required"
            raise ProblemError(401, title, "send Authorization: Bearer <token>")
        if not who.may(permission):
            if action:
                await self.audit(request, who, action, "denied", obj)
            raise ProblemError(403, "forbidden", f'the role "{who.role}" may not {permission}')
        return who


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return exc.response
