"""A reload that would drop every target, every service or every credential is refused (the running config
carries on, monitor_config_last_reload_successful 0) unless POST /-/reload?allow_empty=1 asks for it; an
empty file is a config error. Against the daemon as a process, over HTTP and SIGHUP."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config.reload_guard import drops_everything
from tests.conftest import Loader
from tests.e2e.peers import daemon_process, free_port, http_get, http_post, wait_for

TOKEN = "reload-guard-operator-token"
AUTH = """auth:
  anonymous: viewer
  tokens:
    - {name: ops, role: operator, token: "${RELOAD_GUARD_TOKEN}"}
"""
MODULES = "modules:\n  tcp: {kind: tcp, interval: 1s, timeout: 500ms}\n"
TARGETS = "targets:\n  - {name: gate, address: 127.0.0.1, checks: [{module: tcp, port: %d}]}\n"
SERVICES = "services:\n  - {name: portal, targets: [gate]}\n"


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP port that accepts (the one target's check stays up)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield int(sock.getsockname()[1])
    sock.close()


def _metric(base: str, name: str) -> float | None:
    for line in http_get(f"{base}/metrics")[1].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _counts(base: str) -> tuple[int, int]:
    targets = json.loads(http_get(f"{base}/api/v1/targets")[1])["targets"]
    services = json.loads(http_get(f"{base}/api/v1/services")[1])["services"]
    return len(targets), len(services)


def test_reload_dropping_everything_is_refused_unless_asked(
    tmp_path: Path, listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELOAD_GUARD_TOKEN", TOKEN)
    config = tmp_path / "monitor.yml"
    good = MODULES + TARGETS % listener + SERVICES + AUTH
    config.write_text(good, encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["run", "--config", str(config), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with daemon_process(args, tmp_path) as daemon:
        wait_for(lambda: http_get(f"{base}/readyz")[0] == 200, 30, what="daemon ready")
        assert _counts(base) == (1, 1)

        def reload(query: str = "") -> tuple[int, list[str]]:
            status, body = http_post(f"{base}/-/reload{query}", token=TOKEN)
            return status, json.loads(body).get("errors", [])

        # the truncated deploy: an empty (or comment-only) file is an error, not "0 targets"
        for empty in ("", "# monitor.yml\n\n   \n"):
            config.write_text(empty, encoding="utf-8")
            assert reload() == (400, [f"{config}:1: the file is empty (nothing but blank lines and comments)"])
            assert _metric(base, "monitor_config_last_reload_successful") == 0.0

        # a hostile file is an answer too, fast: the alias bomb that took check-config past 2 GB
        config.write_text((Path(__file__).parent / "invalid" / "alias_bomb.yml").read_text(), encoding="utf-8")
        status, errors = reload()
        assert status == 400 and errors == [f"{config}:6: aliases expand to more than 100,000 values (an alias bomb?)"]
        assert _counts(base) == (1, 1)

        # valid files that would drop all targets, all services, or every credential
        cases = {
            "no targets": (MODULES + AUTH, ["no targets (the running config monitors 1)", "no services"]),
            "no services": (MODULES + TARGETS % listener + AUTH, ["no services (the running config has 1)"]),
            "no auth": (MODULES + TARGETS % listener + SERVICES, ["no auth tokens, users or proxy"]),
        }
        for name, (text, expected) in cases.items():
            config.write_text(text, encoding="utf-8")
            status, errors = reload()  # the token still works: the refused config's (empty) auth never applied
            assert status == 400, name
            assert all(e.startswith(f"{config}: reload refused: it has ") for e in errors[:-1]), errors
            for part in expected:
                assert any(part in e for e in errors), (name, errors)
            assert errors[-1] == "to apply it anyway, POST /-/reload?allow_empty=1"
            assert _metric(base, "monitor_config_last_reload_successful") == 0.0
            assert _counts(base) == (1, 1), name  # still running the last good config

        # SIGHUP cannot say "I mean it": refused, logged
        config.write_text(MODULES + AUTH, encoding="utf-8")
        refusals = daemon.output().count('"event": "config_reload_refused"')
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: daemon.output().count('"event": "config_reload_refused"') > refusals, 10, what="refusal log")
        assert _counts(base) == (1, 1)
        refused = [json.loads(line) for line in daemon.output().splitlines() if "config_reload_refused" in line]
        assert refused[-1]["level"] == "error" and "reload refused: it has no targets" in refused[-1]["errors"][0]

        # a good config is applied again (metric back to 1) ...
        config.write_text(good, encoding="utf-8")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _metric(base, "monitor_config_last_reload_successful") == 1.0, 10, what="reload ok")
        # ... and dropping the services on purpose works when asked for
        config.write_text(MODULES + TARGETS % listener + AUTH, encoding="utf-8")
        assert reload("?allow_empty=1") == (200, [])
        assert _counts(base) == (1, 0)
        assert _metric(base, "monitor_config_last_reload_successful") == 1.0
        assert daemon.stop(signal.SIGTERM) == 0, daemon.output()


def test_drops_everything_compares_whole_configs(load_yaml_config: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding or changing is fine; only losing all of a kind is reported; an estate that had none loses nothing."""
    monkeypatch.setenv("RELOAD_GUARD_TOKEN", TOKEN)
    full = load_yaml_config(MODULES + TARGETS % 9 + SERVICES + AUTH).inventory
    bare = load_yaml_config("version: 1\n").inventory
    other = load_yaml_config(
        MODULES + TARGETS.replace("gate", "other") % 9 + SERVICES.replace("gate", "other") + AUTH
    ).inventory
    assert drops_everything(full, other) == []
    assert drops_everything(bare, full) == []
    assert drops_everything(bare, bare) == []
    assert len(drops_everything(full, bare)) == 3
