"""The `command` notifier against a real program (a script written by the test): argument list without a
shell, placeholders as whole arguments, the idempotency key in the environment, the payload on stdin, the
exit status judged, output in the log, a timeout that kills the whole process group."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from monitor.config.response_model import ResponseConfig
from monitor.incidents.paging import recipients
from monitor.notifiers.base import NotifyError
from monitor.notifiers.command import Command, CommandNotifier

SCRIPT = """\
import json, os, sys, time
out = sys.argv[1]
record = {"argv": sys.argv[2:], "key": os.environ.get("MONITOR_IDEMPOTENCY_KEY"),
          "home": os.environ.get("HOME"), "stdin": json.load(sys.stdin)}
with open(out, "a") as f:
    f.write(json.dumps(record, ensure_ascii=False) + "\\n")
mode = os.environ.get("MODE", "ok")
print("calling", record["argv"])
if mode == "fail":
    print("gateway busy", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    with open(out + ".child", "w") as f:
        f.write(str(child))
    time.sleep(60)
"""
PAYLOAD = {"version": 1, "event": "firing", "recipient": "当番", "phone": "+81-3-0000-0000", "level": 1,
           "subject": "[重大] pref13-edge; rm -rf / 障害", "incident": {"id": 12}}  # fmt: skip


def notifier(tmp_path: Path, mode: str = "ok", timeout: float = 10.0) -> tuple[Command, Path]:
    script = tmp_path / "gateway.py"
    script.write_text(SCRIPT)
    out = tmp_path / "calls.jsonl"
    config = CommandNotifier.model_validate({
        "kind": "command",
        "command": [sys.executable, str(script), str(out), "--to", "{phone}", "--key={idempotency_key}",
                    "{subject}", "#{incident}/L{level}"],
        "timeout": timeout,
        "env": {"MODE": mode},
    })  # fmt: skip
    return Command("voice", config), out


async def test_runs_the_program_with_arguments_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each placeholder fills one argument (a ';' in the subject is just text), the key is in the environment
    and the arguments, the payload arrives on stdin, and the daemon's environment is not passed on."""
    monkeypatch.setenv("HOME", "/root-secret-home")
    command, out = notifier(tmp_path)
    await command.send(PAYLOAD, "12:1:voice:oncall:firing")
    (call,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert call["argv"] == ["--to", "+81-3-0000-0000", "--key=12:1:voice:oncall:firing",
                            "[重大] pref13-edge; rm -rf / 障害", "#12/L1"]  # fmt: skip
    assert call["key"] == "12:1:voice:oncall:firing" and call["stdin"] == PAYLOAD
    assert call["home"] is None


async def test_a_failing_program_is_a_notify_error_and_its_output_is_logged(tmp_path: Path) -> None:
    command, _ = notifier(tmp_path, mode="fail")
    log = io.StringIO()
    structlog.configure(logger_factory=structlog.WriteLoggerFactory(log))
    try:
        with pytest.raises(NotifyError, match="exit status 3"):
            await command.send(PAYLOAD, "k1")
    finally:
        structlog.reset_defaults()
    assert "gateway busy" in log.getvalue() and "command_notifier_failed" in log.getvalue()


def gone(pid: int) -> bool:
    """The process has exited (a killed child of a dead parent may be a zombie until init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


async def test_a_hanging_program_is_killed_with_its_children(tmp_path: Path) -> None:
    """At the timeout the whole process group is killed (the child it forked too), and the send fails."""
    command, _ = notifier(tmp_path, mode="hang", timeout=1.5)
    started = time.monotonic()
    with pytest.raises(NotifyError, match="timed out"):
        await command.send(PAYLOAD, "k2")
    assert time.monotonic() - started < 10
    child = int((tmp_path / "calls.jsonl.child").read_text())
    deadline = time.monotonic() + 10
    while not gone(child):
        if time.monotonic() > deadline:
            pytest.fail("the forked child survived the timeout")
        await asyncio.sleep(0.1)


async def test_a_missing_program_is_a_notify_error(tmp_path: Path) -> None:
    config = CommandNotifier.model_validate({"kind": "command", "command": [str(tmp_path / "nope")]})
    with pytest.raises(NotifyError, match="cannot start"):
        await Command("voice", config).send(PAYLOAD, "k3")


@pytest.mark.parametrize(
    ("command", "message"),
    [(["call.sh"], "must be an absolute path"), (["/bin/call", "{number}"], "unknown placeholder {number}")],
)
def test_bad_commands_are_config_errors(command: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CommandNotifier.model_validate({"kind": "command", "command": command})


def test_a_playbook_level_reaches_contacts_through_a_command() -> None:
    """A contact with a phone number is paged through a command notifier like through a webhook."""
    config = ResponseConfig.model_validate({
        "notifiers": {"voice": {"kind": "command", "command": ["/usr/local/bin/call", "{phone}"]}},
        "contacts": {"oncall": {"name": "当番", "phone": "+81-3-0000-0000"}},
        "playbooks": {"default": {"levels": [{"notify": [{"contacts": ["oncall"], "via": ["voice"]}]}]}},
    })  # fmt: skip
    (found,) = recipients(config, "default", 1)
    assert (found.channel_kind, found.key, found.details["phone"]) == ("command", "oncall", "+81-3-0000-0000")
