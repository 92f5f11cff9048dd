"""Bad input is answered, never crashed on: JSON bodies read with limits (depth, digits, finite numbers,
valid Unicode), and one middleware that turns every refusal into RFC 9457 problem+json, writes one
log line for it, and audits a refused write that its handler did not audit itself.

Python's own limits are the failure modes a client can reach: json.loads recurses once per nesting
level (RecursionError), int() refuses more than 4,300 digits (ValueError), a "\\ud800" escape gives a
str that cannot be encoded (UnicodeEncodeError, e.g. in the audit hash), huge numbers overflow
datetime arithmetic (OverflowError). None of them is a fault of the daemon, so none is a 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from monitor.access.auth import ACTION, AUDITED, SAFE_METHODS, Guard, Principal, ProblemError, problem, sanitize

log = structlog.get_logger()
MAX_DEPTH = 32  # the deepest body of the API (an Alertmanager webhook) is 4 levels
MAX_INT_DIGITS = 30  # ids and counts fit in 19; no field needs more
# what a client's bad input can raise in a handler: answered 400, not 500
INPUT_ERRORS = (RecursionError, UnicodeError, OverflowError, ValueError)


def _parse_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ProblemError(400, "invalid JSON body", f"a number has more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _parse_float(text: str) -> float:
    if len(text) > 64 or not math.isfinite(value := float(text)):
        raise ProblemError(400, "invalid JSON body", "a number is too large or too long")
    return value


def _parse_constant(name: str) -> float:
    raise ProblemError(400, "invalid JSON body", f"{name} is not JSON")


def check_shape(value: Any) -> None:
    """No deeper than MAX_DEPTH, and every string (keys too) valid Unicode. Iterative: no recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ProblemError(400, "invalid JSON body", "a string holds a lone surrogate (\\udxxx)") from None
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise ProblemError(400, "invalid JSON body", f"nested deeper than {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(400, "invalid JSON body", "the body is not UTF-8") from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except RecursionError:
        raise ProblemError(400, "invalid JSON body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError included
        raise ProblemError(400, "invalid JSON body", " ".join(str(exc).split())[:200]) from None
    check_shape(value)
    return value


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (aiohttp's client_max_size applies: 413 over it)."""
    return parse_json(await request.read())


async def body_of(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ProblemError(400, "the body must be a JSON object")
    return body


MAX_ID = 2**63 - 1  # the stores' integer columns: a larger number is no id and no count


def whole_number(value: str, name: str) -> int:
    try:
        number = int(value) if len(value) <= 20 else None
    except ValueError:
        number = None
    if number is None or abs(number) > MAX_ID:
        raise ProblemError(400, f"{name} must be a whole number", f"at most {MAX_ID}")
    return number


def _outcome(status: int) -> str:
    return {401: "unauthenticated", 403: "denied", 429: "rate_limited"}.get(status, "invalid")


def error_middleware(guard: Guard) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        audit_as: str | None = None
        try:
            return await handler(request)
        except ProblemError as exc:
            response, audit_as = exc.response, exc.audit
        except web.HTTPException as exc:
            if exc.status < 400:
                raise  # redirects and 304s are answers, not errors
            extra = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
            response = problem(exc.status, exc.reason)
            response.headers.update(extra)
        except INPUT_ERRORS as exc:
            response = problem(400, "malformed request", type(exc).__name__)
        except Exception:
            log.exception(
                "request_failed", method=request.method, path=sanitize(request.path[:200]), source=request.remote
            )
            response = problem(500, "internal error", "the daemon failed on this request; see its log")
            await _audit_refusal(guard, request, response.status, audit_as)
            return response
        if response.status != 429:  # a flood of those is counted, not logged line by line
            log.info(
                "request_refused",
                method=request.method,
                path=sanitize(request.path[:200]),
                status=response.status,
                source=request.remote,
            )
        await _audit_refusal(guard, request, response.status, audit_as)
        return response

    return middleware


async def _audit_refusal(guard: Guard, request: web.Request, status: int, audit_as: str | None) -> None:
    """Every refused write is in the audit log, whatever refused it (and a few refused reads: audit_as)."""
    if request.get(AUDITED) or (request.method in SAFE_METHODS and audit_as is None):
        return
    route = request.match_info.route.resource
    action, obj = request.get(ACTION) or (f"{request.method} {route.canonical if route else 'unrouted'}", None)
    action = audit_as or action
    try:
        who: Principal | None = guard.caller(request)
    except ProblemError:  # the credentials were what was refused
        who = None
    try:
        await guard.audit(request, who, action, _outcome(status), obj or sanitize(request.path[:500]), status=status)
    except Exception:  # the answer still goes out; the store's own errors are counted and logged there
        log.exception("audit_failed", action=action)
