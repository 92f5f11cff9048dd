"""Our IF-MIB series agree with the Debian prometheus-snmp-exporter reading the same snmpd at the same moment:
with our own if_mib module (tests/snmp/data/if_mib.yml, always there) and, where the shared reference data lies
beside the checkout, with upstream's generated one (../shared/data/snmp_exporter/if_mib.yml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from probes.base import ProbeRequest
from probes.snmp.probe import SnmpProbe
from probes.snmp.settings import SnmpSettings
from tests.snmp.conftest import Snmpd, free_tcp_port, stop

ROOT = Path(__file__).parents[2]
IF_MIB_OURS = Path(__file__).parent / "data" / "if_mib.yml"
IF_MIB_UPSTREAM = ROOT.parent / "shared" / "data" / "snmp_exporter" / "if_mib.yml"
os.environ.setdefault("TEST_SNMP_COMMUNITY", "public")


@pytest.fixture(scope="module", params=[IF_MIB_OURS, IF_MIB_UPSTREAM], ids=["ours", "upstream"])
def snmp_exporter(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config: Path = request.param
    if shutil.which("prometheus-snmp-exporter") is None:
        pytest.skip("prometheus-snmp-exporter is not installed (scripts/system-deps.sh)")
    if not config.exists():
        pytest.skip(f"{config} (shared reference data, beside the checkout in CI) is not there")
    port = free_tcp_port()
    log = (tmp_path_factory.mktemp("exporter") / "exporter.log").open("wb")
    proc = subprocess.Popen(
        ["prometheus-snmp-exporter", f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/", timeout=1).read()
            break
        except OSError:
            time.sleep(0.2)
    yield base
    stop(proc)


def scrape(base: str, target: str) -> dict[tuple[str, str], float]:
    url = f"{base}/snmp?module=if_mib&target={target}"
    text = urllib.request.urlopen(url, timeout=20).read().decode()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # the parser names counter samples <family>_total; the exporter's own names have no suffix
            out[(family.name, sample.labels.get("ifIndex", ""))] = sample.value
    return out


async def test_values_match_snmp_exporter(snmpd: Snmpd, snmp_exporter: str) -> None:
    """Status and speed equal the exporter's; counters lie between two exporter scrapes around our poll;
    interface sets are the same."""
    probe = SnmpProbe()
    settings = SnmpSettings.model_validate({"community": "${TEST_SNMP_COMMUNITY}"})
    request = ProbeRequest("127.0.0.1", None, snmpd.port, 5.0, {}, "parity/snmp")
    try:
        await probe.run(request, settings)
        before = scrape(snmp_exporter, snmpd.address)
        result = await probe.run(request, settings)
        after = scrape(snmp_exporter, snmpd.address)
    finally:
        await probe.close()
    assert result.ok, result.error
    ours = {(s.name, dict(s.labels)["if_index"]): s.value for s in result.series if "if_index" in dict(s.labels)}
    indexes = {i for _, i in ours}
    assert indexes == {i for (n, i) in before if n == "ifOperStatus"}
    pairs = {
        "monitor_if_in_octets_total": "ifHCInOctets", "monitor_if_out_octets_total": "ifHCOutOctets",
        "monitor_if_in_errors_total": "ifInErrors", "monitor_if_out_errors_total": "ifOutErrors",
        "monitor_if_in_discards_total": "ifInDiscards", "monitor_if_out_discards_total": "ifOutDiscards",
        "monitor_if_in_unicast_packets_total": "ifHCInUcastPkts", "monitor_if_out_unicast_packets_total": "ifHCOutUcastPkts",
        "monitor_if_in_multicast_packets_total": "ifHCInMulticastPkts",
        "monitor_if_in_broadcast_packets_total": "ifHCInBroadcastPkts",
    }  # fmt: skip
    for index in indexes:
        assert ours[("monitor_if_oper_status", index)] == before[("ifOperStatus", index)]
        assert ours[("monitor_if_admin_status", index)] == before[("ifAdminStatus", index)]
        if before[("ifHighSpeed", index)]:
            assert ours[("monitor_if_speed_bytes_per_second", index)] == before[("ifHighSpeed", index)] * 1e6 / 8
        for mine, theirs in pairs.items():
            assert before[(theirs, index)] <= ours[(mine, index)] <= after[(theirs, index)], (mine, index)
