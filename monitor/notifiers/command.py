"""A site's own program as a channel (a voice-call or SMS gateway, 自動架電): run with an argument list, never a
shell, so nothing in a page (a target name, a reason) can become a command.

Each argument may hold placeholders, replaced whole-value by value and never re-split: {idempotency_key},
{event}, {incident}, {level}, {recipient}, {phone}, {subject}. The program also gets the idempotency key in
MONITOR_IDEMPOTENCY_KEY (the same for every retry of one notification: a gateway that already called must
not call again) and the whole payload as JSON on stdin. Exit status 0 is delivered; anything else, a
timeout (the process group is killed) or a program that cannot start is a NotifyError, retried by the
outbox. Output is captured (bounded) to the log, never to the payload or the error."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
from typing import Any, Literal

import structlog
from pydantic import Field, field_validator

from monitor.config.types import Timeout
from monitor.notifiers.base import Channel, NotifierSettings, NotifyError

log = structlog.get_logger()
PLACEHOLDERS = ("idempotency_key", "event", "incident", "level", "recipient", "phone", "subject")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
MAX_OUTPUT = 8 * 1024  # bytes of stdout and of stderr kept for the log
BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ")  # what the program inherits: nothing else of the daemon's environment


class CommandNotifier(NotifierSettings):
    kind: Literal["command"]
    command: list[str] = Field(min_length=1)  # argv: the program (an absolute path) and its arguments
    timeout: Timeout = 30.0
    env: dict[str, str] = {}  # extra environment (no secrets here: give the program a file of its own)

    @field_validator("command")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not os.path.isabs(argv[0]):
            raise ValueError(f'command[0] must be an absolute path (no PATH lookup, no shell), not "{argv[0]}"')
        for arg in argv:
            for name in _PLACEHOLDER.findall(arg):
                if name not in PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{name}}}; known: " + ", ".join(PLACEHOLDERS))
        return argv


def _values(payload: dict[str, Any], key: str) -> dict[str, str]:
    incident = payload.get("incident") or {}
    return {
        "idempotency_key": key,
        "event": str(payload.get("event", "")),
        "incident": str(incident.get("id", "")),
        "level": str(payload.get("level", "")),
        "recipient": str(payload.get("recipient", "")),
        "phone": str(payload.get("phone", "")),
        "subject": str(payload.get("subject", "")),
    }


def argv(config: CommandNotifier, payload: dict[str, Any], key: str) -> list[str]:
    """The argument list for one notification: placeholders replaced, one argument stays one argument."""
    values = _values(payload, key)
    return [_PLACEHOLDER.sub(lambda m: values[m[1]], arg) for arg in config.command]


class Command:
    kind = "command"

    def __init__(self, name: str, config: CommandNotifier) -> None:
        self.name = name
        self.config = config

    async def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        cfg = self.config
        env = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
        env.update(cfg.env)
        env["MONITOR_IDEMPOTENCY_KEY"] = idempotency_key
        env["MONITOR_NOTIFIER"] = self.name
        stdin = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv(cfg, payload, idempotency_key),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills what it started, too
            )
        except OSError as exc:
            raise NotifyError(f"command cannot start: {cfg.command[0]}: {exc.strerror or type(exc).__name__}") from None
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin), cfg.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise NotifyError(f"command timed out after {cfg.timeout:g} s (killed)") from None
        finally:
            if process.returncode is None:  # cancelled (the daemon is stopping): leave nothing behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        code = process.returncode
        assert code is not None  # communicate() returned: the process has exited
        fields = {"notifier": self.name, "key": idempotency_key, "status": code,
                  "stdout": out[:MAX_OUTPUT].decode("utf-8", "replace"),
                  "stderr": err[:MAX_OUTPUT].decode("utf-8", "replace")}  # fmt: skip
        if code != 0:
            log.warning("command_notifier_failed", **fields)
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            raise NotifyError(f"command failed: {how}")
        log.info("command_notifier_ran", **fields)

    async def close(self) -> None:
        return None


CHANNEL = Channel(CommandNotifier, Command)
