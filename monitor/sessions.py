"""Console logins: scrypt password hashes, sessions with a CSRF token each, and a limit on failed
logins per address and per user name.

Sessions live in memory (a restart logs everyone out, which is the safe direction). The session cookie
is HttpOnly and SameSite=Strict; every state-changing request made with it must also carry the
session's CSRF token in the X-CSRF-Token header, which a form posted from another site cannot set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms per check: slow for guessing, fine for a login
COOKIE = "monitor_session"
CSRF_HEADER = "X-CSRF-Token"


def hash_password(password: str, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _scheme, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(base64.b64decode(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass
class Session:
    name: str
    role: str
    csrf: str
    created: float
    seen: float


@dataclass
class SessionStore:
    idle_timeout: float
    max_age: float
    sessions: dict[str, Session] = field(default_factory=dict)

    def create(self, name: str, role: str) -> tuple[str, Session]:
        now = time.monotonic()
        if len(self.sessions) > 10_000:
            self.prune()
        sid = secrets.token_urlsafe(32)
        session = self.sessions[sid] = Session(name, role, secrets.token_urlsafe(24), now, now)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self.sessions.get(sid)
        now = time.monotonic()
        if session is None or now - session.seen > self.idle_timeout or now - session.created > self.max_age:
            self.sessions.pop(sid, None)
            return None
        session.seen = now
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self.sessions.pop(sid, None)

    def prune(self) -> None:
        now = time.monotonic()
        for sid, s in list(self.sessions.items()):
            if now - s.seen > self.idle_timeout or now - s.created > self.max_age:
                del self.sessions[sid]


@dataclass
class LoginLimiter:
    """At most `attempts` failed logins per key (address, and user name) within `window` seconds."""

    attempts: int
    window: float
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def blocked(self, *keys: str) -> float:
        """Seconds until a login may be tried again (0: now)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            times = self.failures.get(key)
            while times and now - times[0] > self.window:
                times.popleft()
            if times is not None and len(times) >= self.attempts:
                wait = max(wait, self.window - (now - times[0]))
        return wait

    def failed(self, *keys: str) -> None:
        if len(self.failures) > 100_000:
            self.failures.clear()
        for key in keys:
            self.failures.setdefault(key, deque()).append(time.monotonic())

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self.failures.pop(key, None)
