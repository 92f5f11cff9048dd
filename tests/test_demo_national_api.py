"""The demo watches the intermediate-server platform through its API as a client uses it: the shipped
module's transaction (log in -> token -> status call -> check a field) with the daemon's probe against the
demo's simulated servers over TLS, UP when all is well, and each API fault DOWN with the failing step named,
while the server's /health still answers ok (what the old single check saw). On the demo's addresses but a
free port of theirs, so a demo or lab running on this machine is not in the way."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from monitor.config.loader import load_config
from monitor.core.inventory import Check
from monitor.demo.estate import API_PASSWORD_FILE, build_estate
from monitor.demo.faults import Fault, FaultError, FaultInjector
from monitor.demo.network import SimNetwork
from monitor.demo.pki import DemoPKI
from monitor.demo.response_config import DEMO_TOKEN_ENV
from monitor.scheduling.runner import ProbeRunner
from tests.test_demo_ocsp import _free_port, runner

__all__ = ["runner"]  # the fixture, shared with the OCSP demo test

Demo = tuple[SimNetwork, Mapping[str, Check], Path, int]


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Demo]:
    for env in DEMO_TOKEN_ENV.values():
        monkeypatch.setenv(env, "test-token-not-a-secret")
    estate = build_estate(1, "demo", icmp=False)
    servers = [s for s in estate.servers if s.target.startswith(("chukan-", "juki-"))]
    port = _free_port(sorted({s.address for s in servers}))
    estate.servers = [dataclasses.replace(s, port=port) for s in servers]
    for module in ("chukan_api", "https"):
        estate.config["modules"][module]["http"]["port"] = port
    pki = DemoPKI.create(tmp_path / "certs")
    config = load_config(estate.write(tmp_path))
    network = SimNetwork(estate, pki)
    await network.start()
    try:
        yield network, config.inventory.checks, tmp_path, port
    finally:
        await network.stop()


async def _get(check: Check, port: int, ca: Path, path: str, **headers: str) -> aiohttp.ClientResponse:
    context = ssl.create_default_context(cafile=str(ca))
    url = f"https://{check.target.address}:{port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=context, server_hostname=check.target.hostname, headers=headers) as response,
    ):
        await response.read()
        return response


async def test_the_api_transaction_is_up_and_each_api_fault_names_its_step(demo: Demo, runner: ProbeRunner) -> None:
    network, checks, directory, port = demo
    east, west = checks["chukan-east/chukan_api"], checks["chukan-west/chukan_api"]
    for check in (east, west):
        result = await runner.run(check)
        assert result.ok and result.degraded is None, result.error or result.degraded
        steps = {dict(s.labels)["step"] for s in result.series if s.name == "monitor_http_step_status_code"}
        assert steps == {"login", "status"}
    injector = FaultInjector(network)
    expected = {
        "api-ng": "step 2 'status': status is 'NG', expected 'OK'",
        "api-login": "step 1 'login': HTTP 401",
        "error": "step 1 'login': HTTP 503",
    }
    for mode, reason in expected.items():
        await injector.set(Fault("chukan-east", mode))
        result = await runner.run(east)
        assert not result.ok and result.error is not None and result.error.startswith(reason), (mode, result.error)
        if mode != "error":  # what a /health check sees: nothing wrong
            health = await _get(east, port, directory / "certs" / "demo-ca.pem", "/health")
            assert health.status == 200 and (await health.text()) == "ok\n"
        assert (await runner.run(west)).ok  # the other center's platform is untouched
    await injector.set(Fault("chukan-east", "up"))
    assert (await runner.run(east)).ok
    with pytest.raises(FaultError, match="needs a national API server"):
        injector.check(Fault("juki-east", "api-ng"))


async def test_a_wrong_password_or_token_is_refused(demo: Demo, runner: ProbeRunner) -> None:
    """The simulated API checks what the monitoring account sends: the transaction is not up by default."""
    _, checks, directory, port = demo
    east = checks["chukan-east/chukan_api"]
    (directory / API_PASSWORD_FILE).write_text("not-the-password\n")
    wrong = load_config(directory / "monitor.yml").inventory.checks["chukan-east/chukan_api"]
    result = await runner.run(wrong)
    assert not result.ok and result.error is not None and result.error.startswith("step 1 'login': HTTP 401")
    forged = await _get(east, port, directory / "certs" / "demo-ca.pem", "/api/v1/status", Authorization="Bearer x")
    assert forged.status == 401 and (await forged.json()) == {"error": "invalid_token"}
