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
from collections import OrderedDict
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
class _Failures:
    count: int
    last: float
    until: float  # no login for this key before this time


@dataclass
class LoginLimiter:
    """Failed logins, per address first: `attempts` failures from one address within `window` seconds,
    then each further failure doubles that address's wait (1 s, 2 s, ... up to `window`). No lock-out:
    per user name the wait starts only after `attempts` x USER_FACTOR failures (a guess spread over many
    addresses) and never exceeds USER_MAX_WAIT, so nobody can keep a real operator out for long from
    somewhere else. The keys are kept least recently used first and the oldest dropped at `max_keys`:
    a flood of addresses never clears the counters of the others."""

    attempts: int
    window: float
    max_keys: int = 100_000
    failures: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)

    USER_FACTOR = 4
    USER_MAX_WAIT = 30.0

    def _limits(self, key: str) -> tuple[int, float]:
        if key.startswith("user:"):
            return self.attempts * self.USER_FACTOR, min(self.window, self.USER_MAX_WAIT)
        return self.attempts, self.window

    def blocked(self, *keys: str) -> float:
        """Seconds until a login may be tried again (0: now)."""
        now = time.monotonic()
        return max([0.0, *(f.until - now for k in keys if (f := self.failures.get(k)) is not None)])

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            entry = self.failures.pop(key, None)
            if entry is None or now - entry.last > self.window:  # quiet for a window: start again
                entry = _Failures(0, now, 0.0)
            entry.count += 1
            entry.last = now
            threshold, longest = self._limits(key)
            if entry.count >= threshold:
                entry.until = now + min(longest, 2.0 ** min(entry.count - threshold, 30))
            self.failures[key] = entry  # the most recent last
        while len(self.failures) > self.max_keys:
            self.failures.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self.failures.pop(key, None)
