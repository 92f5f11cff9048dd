"""The intermediate-server platform's API as the demo simulates it: authenticate, get a token, call.

A 200 from `/health` says a web server answers; it does not say the platform's API works. The demo's
`chukan` servers answer the path a real client takes (POST /api/v1/login with the monitoring
account -> a bearer token that expires; GET /api/v1/status with it -> JSON with `status`), so the
shipped `chukan_api` transaction checks the API itself. Two faults break only the API, leaving
`/health` answering `ok`:
  api-ng    - login works, the status call answers 200 with {"status": "NG"} (a back end down)
  api-login - the login is refused (401): an expired monitoring account, an auth server down
"""

from __future__ import annotations

import hmac
import secrets
import time

from aiohttp import web

from monitor.demo.estate import API_USER

TOKEN_TTL = 300.0  # seconds; the check logs in at every run, so it never sees one expire


class NationalApi:
    def __init__(self, password: str) -> None:
        self._password = password.encode()
        self._tokens: dict[str, float] = {}  # token -> expiry (monotonic)

    def login(self, user: object, password: object, mode: str) -> web.Response:
        if mode == "api-login" or not (
            user == API_USER and isinstance(password, str) and hmac.compare_digest(password.encode(), self._password)
        ):
            return web.json_response({"error": "invalid_credentials"}, status=401)
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}  # forget expired ones
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now + TOKEN_TTL
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": int(TOKEN_TTL)})

    def status(self, authorization: str, mode: str) -> web.Response:
        scheme, _, token = authorization.partition(" ")
        expiry = self._tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.monotonic():
            return web.json_response({"error": "invalid_token"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})  # fmt: skip
        if mode == "api-ng":
            return web.json_response({"status": "NG", "detail": "back end unavailable (simulated)"})
        return web.json_response({"status": "OK", "version": "2.4.1"})
