"""The demo's JPKI responders are real OCSP responders: the config the demo writes, the daemon's probe and the
simulated network (responders and CRL distribution on their 127.x addresses) together, UP when all is
well, and each OCSP fault of the injector DOWN with its reason. On the demo's addresses but a free port of
theirs, so a demo or lab running on this machine (port 8080) is not in the way."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from cryptography.x509 import ocsp

from monitor.clock import SystemClock
from monitor.config.loader import load_config
from monitor.core.inventory import Check
from monitor.demo.estate import build_estate
from monitor.demo.faults import Fault, FaultError, FaultInjector
from monitor.demo.network import SimNetwork
from monitor.demo.ocsp_responder import MalformedRequest, parse_request
from monitor.demo.pki import DemoPKI
from monitor.demo.response_config import DEMO_TOKEN_ENV
from monitor.scheduling.runner import ProbeRunner
from probes import ocsp_wire
from probes.ocsp import OCSPSettings
from probes.registry import close_probes, create_probes

Demo = tuple[SimNetwork, Mapping[str, Check]]


def _free_port(addresses: list[str]) -> int:
    """A TCP port free on every one of `addresses`."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in addresses:
                with socket.socket() as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise AssertionError(f"no port free on all of {addresses}")


@pytest.fixture
async def runner() -> AsyncIterator[ProbeRunner]:
    probes = create_probes()
    try:
        yield ProbeRunner(probes, SystemClock())
    finally:
        await close_probes(probes)


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Demo]:
    for env in DEMO_TOKEN_ENV.values():  # the demo's config refers to its API tokens
        monkeypatch.setenv(env, "test-token-not-a-secret")
    estate = build_estate(1, "demo", icmp=False)
    # only the responders and CRL servers (the rest is not what this test is about), on a port free on all
    servers = [s for s in estate.servers if s.target.startswith(("ocsp-", "crl-"))]
    port = _free_port(sorted({s.address for s in servers}))
    estate.servers = [dataclasses.replace(s, port=port) for s in servers]
    for target in estate.config["targets"]:
        if target["name"].startswith("ocsp-"):
            target["checks"][0]["port"] = port
    crl_east = next(s.address for s in servers if s.target == "crl-east")
    estate.config["modules"]["jpki_ocsp"]["ocsp"]["crl"] = f"http://{crl_east}:{port}/crl/jpki.crl"
    pki = DemoPKI.create(tmp_path / "certs")
    config = load_config(estate.write(tmp_path))
    network = SimNetwork(estate, pki)
    await network.start()
    try:
        yield network, config.inventory.checks
    finally:
        await network.stop()


async def test_the_demo_responders_answer_and_each_ocsp_fault_is_a_reason(demo: Demo, runner: ProbeRunner) -> None:
    network, checks = demo
    east, west = checks["ocsp-east/jpki_ocsp"], checks["ocsp-west/jpki_ocsp"]
    for check in (east, west):
        result = await runner.run(check)
        assert result.ok and result.degraded is None, result.error or result.degraded
        assert result.info["ocsp_signer"] == "CN=Demo JPKI OCSP Responder,O=Demo national backbone,C=JP"
        assert "crl" in result.phases  # compared with the east center's CRL, and they agree
    injector = FaultInjector(network)
    expected = {
        "ocsp-trylater": "OCSP: responder says tryLater",
        "ocsp-stale": "OCSP: nextUpdate passed 1h ago",
        "ocsp-wrong-signer": "OCSP: response signed by a certificate that is not an OCSP signer"
        " (CN=Demo JPKI web server,O=Demo national backbone,C=JP)",
        "ocsp-unknown": "OCSP: canary serial 0x",
    }
    for mode, reason in expected.items():
        await injector.set(Fault("ocsp-east", mode))
        result = await runner.run(east)
        assert not result.ok and result.error is not None and result.error.startswith(reason), (mode, result.error)
        assert (await runner.run(west)).ok  # the other center's responder is untouched
    await injector.set(Fault("ocsp-east", "up"))
    assert (await runner.run(east)).ok
    with pytest.raises(FaultError, match="needs an OCSP responder"):
        injector.check(Fault("crl-east", "ocsp-trylater"))


async def test_get_requests_and_malformed_ones(demo: Demo, runner: ProbeRunner) -> None:
    _, checks = demo
    east = checks["ocsp-east/jpki_ocsp"]
    assert isinstance(east.settings, OCSPSettings)
    by_get = dataclasses.replace(east, settings=east.settings.model_copy(update={"method": "get"}))
    result = await runner.run(by_get)
    assert result.ok, result.error
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{east.target.address}:{east.request.port}/{quote('not base64!', safe='')}") as response,
    ):
        body = await response.read()
    assert ocsp.load_der_ocsp_response(body).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    with pytest.raises(MalformedRequest):
        parse_request(b"\x30\x03\x30\x01")
    der = ocsp_wire.ocsp_request(east.settings.material.requests, b"n" * 16)
    ids, nonce = parse_request(der)
    assert nonce == b"n" * 16 and [serial for *_, serial in ids] == east.settings.material.serials
