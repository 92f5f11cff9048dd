"""The demo's SNMP agent serves SET of ifAdminStatus, so the demo's cut is real: driven here by the
desk's own SNMP client (pysnmp), as a cut and a reconnect would be."""

from __future__ import annotations

import pytest

from monitor.config.security_model import SnmpWrite
from monitor.demo.snmp_agent import SimDevice, SimInterface, SnmpAgents
from monitor.security.actions import ActionError, SnmpControl


def creds(monkeypatch: pytest.MonkeyPatch, community: str, port: int) -> SnmpWrite:
    monkeypatch.setenv("DEMO_WRITE_TEST", community)
    return SnmpWrite.model_validate(
        {"version": "2c", "community": "${DEMO_WRITE_TEST}", "port": port, "timeout": "500ms", "retries": 0}
    )


async def agents() -> tuple[SnmpAgents, SimDevice]:
    device = SimDevice("edge", "127.0.0.1", b"demo-read", [SimInterface(5, "Gi0/2/0", "city A", 100, 5e6)],
                       write_community=b"demo-write")  # fmt: skip
    served = SnmpAgents(0)
    await served.add(device)
    return served, device


async def test_set_admin_down_and_up_with_the_write_community(monkeypatch: pytest.MonkeyPatch) -> None:
    served, device = await agents()
    control = SnmpControl()
    try:
        write = creds(monkeypatch, "demo-write", served.port)
        await control.set_admin(write, "127.0.0.1", 5, 2)
        status = await control.status(write, "127.0.0.1", 5)
        assert (status.admin, status.oper) == (2, 2) and device.interface(5).oper == 2
        await control.set_admin(write, "127.0.0.1", 5, 1)
        status = await control.status(write, "127.0.0.1", 5)
        assert (status.admin, status.oper) == (1, 1)
        assert device.sets == [(5, 2), (5, 1)]
    finally:
        control.close()
        served.close()


async def test_the_read_community_cannot_write_and_bad_sets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    served, device = await agents()
    control = SnmpControl()
    try:
        with pytest.raises(ActionError):  # silence, as for a wrong community: a timeout
            await control.set_admin(creds(monkeypatch, "demo-read", served.port), "127.0.0.1", 5, 2)
        write = creds(monkeypatch, "demo-write", served.port)
        with pytest.raises(ActionError, match="notWritable"):
            await control.set_admin(write, "127.0.0.1", 99, 2)  # no such interface
        with pytest.raises(ActionError, match="wrongValue"):
            await control.set_admin(write, "127.0.0.1", 5, 3)
        assert device.sets == [] and device.interface(5).oper == 1
    finally:
        control.close()
        served.close()
