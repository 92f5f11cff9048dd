"""API access: bearer tokens with roles, permissions per role, problem+json errors, and the audit log.

Tokens come from the config (the token by secret reference, or only its SHA-256). A request without
a token has the `auth.anonymous` role (viewer by default, or nothing); a wrong token is a 401 even
where anonymous access would be enough, so a typo never silently downgrades. Every attempt to
change something is written to the audit log: who, what, on which object, from where, and whether
it was allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from monitor.access.sessions import COOKIE, CSRF_HEADER, LoginLimiter, SessionStore, hash_password
from monitor.clock import Clock
from monitor.config.response_model import Auth
from monitor.store.base import Store
from monitor.store.records import AuditEntry

T = TypeVar("T")
AUDITED = web.RequestKey("monitor.audited", bool)  # set on a request once its audit entry is written
ACTION = web.RequestKey("monitor.action", tuple)  # (action, object) a handler is about to attempt
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset(
        {"read", "incident.write", "maintenance.write", "notice.write", "config.reload", "oncall.swap"}
    ),
    "security": frozenset(
        {
            "read",
            "incident.write",
            "maintenance.write",
            "notice.write",
            "config.reload",
            "security.approve",
            "oncall.swap",
        }
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
            "oncall.swap",  # on-call changes for the slots one holds ...
            "oncall.manage",  # ... and for anyone's (a schedule's `managers` get this for that schedule)
            "report",
        }
    ),
    # who signs the monthly report (a section chief, 課長): drafts, reviews and approves its versions
    "manager": frozenset({"read", "report"}),
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


def sanitize(text: str) -> str:
    """`text` with lone surrogates (a "\\ud800" escape, an undecodable header byte) written as \\udxxx:
    storable, hashable into the audit chain, and still telling."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(value: Any, depth: int = 0) -> Any:
    """Audit detail made safe to serialize and hash: valid Unicode, bounded depth."""
    if isinstance(value, str):
        return sanitize(value)
    if depth > 8:
        return "..."
    if isinstance(value, dict):
        return {sanitize(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in value]
    return value


class Tokens:
    """Who the configured credentials are: API tokens (with their expiry), console users, the anonymous role."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        self.anonymous = Principal("anonymous", None if auth.anonymous == "none" else auth.anonymous)
        self._by_digest: dict[str, tuple[Principal, float | None]] = {}
        for token in auth.tokens:
            digest = token.token_sha256 or token_digest(token.token.get_secret_value())  # type: ignore[union-attr]
            expires = token.expires.timestamp() if token.expires is not None else None
            self._by_digest[digest] = (Principal(token.name, token.role), expires)
        self.users = {u.name: u for u in auth.users}

    def principal(self, authorization: str | None) -> Principal | None:
        """The caller; None when a token was given but is not valid. An expired token is a 401 of its own."""
        if not authorization:
            return self.anonymous
        if not authorization.isascii():  # undecodable bytes (aiohttp keeps them as surrogates): never a token
            raise ProblemError(
                401, "invalid token", "the Authorization header is not ASCII", audit="auth.malformed_header"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        found = self._by_digest.get(token_digest(token.strip()))
        if found is None:
            return None
        who, expires = found
        if expires is not None and time.time() >= expires:
            raise ProblemError(401, "token expired", f'the token "{who.name}" expired; ask for a new one')
        return who

    def user(self, name: str) -> Principal | None:
        user = self.users.get(name)
        return Principal(user.name, user.role) if user is not None else None


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    """An RFC 9457 problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


class ProblemError(Exception):
    """A refusal, answered as problem+json. `audit`: the action to audit it as even on a read (a forged
    credential); refused writes are audited in any case (monitor.http.errors)."""

    def __init__(self, status: int, title: str, detail: str = "", *, audit: str | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.audit = status, title, audit
        self.response = problem(status, title, detail, **extra)


class Refused(Exception):
    """An action that does not apply to its object as it stands; `status` is the answer (404, 409, 422)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Guard:
    """Checks permissions and writes the audit log for the API handlers."""

    def __init__(self, tokens: Callable[[], Tokens], store: Store, clock: Clock) -> None:
        self._tokens = tokens
        self.store = store
        self.clock = clock
        limits = tokens().auth.sessions
        self.sessions = SessionStore(limits.idle_timeout, limits.max_age)
        self.logins = LoginLimiter(limits.login_attempts, limits.login_window)
        # what an unknown user's password is checked against, so that it costs as much as a real user's
        self.dummy_hash = hash_password(secrets.token_urlsafe(16))

    def configure(self) -> None:
        """After a reload: new session limits apply to the sessions already open."""
        limits = self._tokens().auth.sessions
        self.sessions.idle_timeout, self.sessions.max_age = limits.idle_timeout, limits.max_age
        self.logins.attempts, self.logins.window = limits.login_attempts, limits.login_window

    @property
    def tokens(self) -> Tokens:
        return self._tokens()

    def caller(self, request: web.Request) -> Principal | None:
        """By bearer token, else by console session (state-changing requests need its CSRF token), else by
        the trusted reverse proxy's user header, else anonymous. None: credentials given but not valid."""
        tokens = self._tokens()
        authorization = request.headers.get("Authorization")
        if authorization:
            return tokens.principal(authorization)
        sid = request.cookies.get(COOKIE)
        if sid:
            session = self.sessions.get(sid)
            if session is None:
                return None  # expired or unknown: log in again
            if request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, ""), session.csrf
            ):
                raise ProblemError(
                    403, "CSRF token missing or wrong", f"send the session's token in {CSRF_HEADER}", audit="csrf"
                )
            return Principal(session.name, session.role)
        proxy = tokens.auth.proxy
        if proxy is not None and (name := request.headers.get(proxy.user_header)):
            if request.remote not in proxy.trusted:
                return None  # a user header from anyone but the proxy is a forgery
            return tokens.user(name.strip())
        return tokens.anonymous

    async def audit(
        self, request: web.Request, who: Principal | None, action: str, outcome: str, obj: str | None = None,
        **detail: Any,
    ) -> None:  # fmt: skip
        request[AUDITED] = True
        entry = AuditEntry(
            at=self.clock.now(),
            actor=sanitize(who.name) if who else "invalid-token",
            role=who.role if who else None,
            action=action,
            outcome=outcome,
            object=None if obj is None else sanitize(str(obj)[:500]),  # callers' JSON may put anything here
            source=request.remote,
            detail=_clean(detail),
        )
        await self.store.audit(entry)

    async def attempt(
        self, request: web.Request, who: Principal, action: str, obj: str | None, work: Awaitable[T]
    ) -> T:
        """Await the action; a refusal is audited and answered as problem+json."""
        try:
            return await work
        except Refused as exc:
            await self.audit(request, who, action, "rejected", obj, error=str(exc))
            raise ProblemError(exc.status, "not possible", str(exc)) from None

    async def require(
        self, request: web.Request, permission: str, action: str | None = None, obj: str | None = None
    ) -> Principal:
        """The caller if allowed; otherwise a 401/403 problem (audited when `action` names a write)."""
        if action:
            request[ACTION] = (action, obj)  # a later refusal (a bad body, say) is audited under this name
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
