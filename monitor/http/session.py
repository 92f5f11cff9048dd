"""Console login and logout, and who the caller is (`GET /api/v1/session`, which also hands the console
its CSRF token). Failed logins are limited per address and per user name, and audited."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from monitor.access.auth import PERMISSIONS, ProblemError, sanitize
from monitor.access.sessions import COOKIE, verify_password
from monitor.http.errors import read_json
from monitor.http.services import SERVICES


async def _credentials(request: web.Request) -> tuple[str, str]:
    if request.content_type == "application/json":
        body: Any = await read_json(request)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            body = await request.post()
        except (ValueError, AssertionError, web.HTTPException):  # e.g. multipart without a boundary
            raise ProblemError(400, "unreadable form body") from None
    else:
        raise ProblemError(415, "send JSON or a form", "Content-Type: application/json or a form")
    if not hasattr(body, "get") or not body.get("name") or not body.get("password"):
        raise ProblemError(400, "name and password are required")
    name, password = sanitize(str(body["name"])[:128]), str(body["password"])[:1024]
    return name, password.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def add_session_routes(app: web.Application) -> None:
    guard = app[SERVICES].guard

    async def login(request: web.Request) -> web.Response:
        try:
            name, password = await _credentials(request)
        except ProblemError as exc:  # a refused login is audited whatever was wrong with it
            await guard.audit(request, None, "session.login", "invalid", None, error=exc.title)
            raise
        keys = (f"addr:{request.remote}", f"user:{name}")
        wait = guard.logins.blocked(*keys)
        if wait > 0:
            await guard.audit(request, None, "session.login", "rate_limited", f"user:{name}")
            error = ProblemError(429, "too many failed logins", f"try again in {wait:.0f} s")
            error.response.headers["Retry-After"] = str(int(wait) + 1)
            raise error
        user = guard.tokens.users.get(name)
        # An unknown user (or one without a password) costs the same scrypt as a real one: the answer's
        # timing must not tell which names exist.
        stored = user.password_hash if user is not None and user.password_hash is not None else None
        matched = await asyncio.to_thread(verify_password, password, stored or guard.dummy_hash)
        ok = matched and stored is not None
        if not ok or user is None:
            guard.logins.failed(*keys)
            await guard.audit(request, None, "session.login", "denied", f"user:{name}")
            raise ProblemError(401, "wrong name or password")
        guard.logins.succeeded(*keys)
        sid, session = guard.sessions.create(user.name, user.role)
        who = guard.tokens.user(user.name)
        await guard.audit(request, who, "session.login", "ok", f"user:{name}")
        response = web.json_response({"name": user.name, "role": user.role, "csrf_token": session.csrf})
        secure = guard.tokens.auth.sessions.secure_cookie
        response.set_cookie(
            COOKIE,
            sid,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=secure == "always" or (secure == "auto" and request.secure),
        )
        return response

    async def logout(request: web.Request) -> web.Response:
        who = guard.caller(request)
        guard.sessions.drop(request.cookies.get(COOKIE))
        await guard.audit(request, who, "session.logout", "ok")
        response = web.json_response({"status": "logged out"})
        response.del_cookie(COOKIE, path="/")
        return response

    async def whoami(request: web.Request) -> web.Response:
        who = guard.caller(request)
        if who is None:
            raise ProblemError(401, "not logged in")
        session = guard.sessions.get(request.cookies.get(COOKIE))
        return web.json_response(
            {
                "name": who.name,
                "role": who.role,
                "csrf_token": session.csrf if session else None,
                "permissions": sorted(PERMISSIONS.get(who.role or "", frozenset())),
            }
        )

    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/v1/session", whoami)
