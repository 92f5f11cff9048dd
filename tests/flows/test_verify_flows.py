"""Cut verification by flows: quiet after the cut, flows again after the reconnect, and no flow ever
received is a failure to verify (a local fault), not a verified cut."""

from __future__ import annotations

import asyncio
import time

from monitor.config.flows_model import VerifyFlows
from monitor.flows.watch import Activity
from monitor.security.actions import SnmpControl
from monitor.security.execute import Executor


def executor() -> Executor:
    return Executor(SnmpControl(), lambda _: None, lambda _: None, lambda _: True)


async def test_a_cut_is_verified_when_no_flow_ends_after_it() -> None:
    since = time.time()
    seen = Activity(last_seen=since - 3.0, received=since)
    ok, line = await executor()._flows(VerifyFlows(quiet=0.3), lambda: seen, True, since, 1.0)
    assert ok and "none from the organisation for 0.3s" in line


async def test_a_cut_is_not_verified_while_flows_still_arrive() -> None:
    since = time.time()
    seen = Activity(last_seen=since - 10.0, received=since)

    async def traffic_goes_on() -> None:
        await asyncio.sleep(0.1)
        seen.last_seen = time.time() + 5.0  # a record of packets well after the cut

    task = asyncio.ensure_future(traffic_goes_on())
    ok, line = await executor()._flows(VerifyFlows(quiet=0.4, skew=1.0), lambda: seen, True, since, 1.0)
    await task
    assert not ok and "still arriving after the cut" in line


async def test_no_flow_ever_is_not_a_verified_cut() -> None:
    ok, line = await executor()._flows(VerifyFlows(quiet=0.1), lambda: None, True, time.time(), 1.0)
    assert not ok and "proves nothing" in line
    ok, line = await executor()._flows(VerifyFlows(quiet=0.1), None, True, time.time(), 1.0)
    assert not ok and "no flow collector" in line


async def test_a_reconnect_waits_for_flows_again() -> None:
    since = time.time()
    seen = Activity(last_seen=since - 60.0, received=since - 60.0)
    ok, line = await executor()._flows(VerifyFlows(quiet=0.1), lambda: seen, False, since, 0.6)
    assert not ok and "none from the organisation within" in line

    async def traffic_again() -> None:
        await asyncio.sleep(0.3)
        seen.last_seen = time.time()

    task = asyncio.ensure_future(traffic_again())
    ok, line = await executor()._flows(VerifyFlows(quiet=0.1), lambda: seen, False, since, 5.0)
    await task
    assert ok and "again" in line


def test_the_reconnect_wait_is_its_own_setting_above_a_routers_active_timeout() -> None:
    """Steady traffic (the gateway's answers to pings) is exported only at the exporter's active timeout, 60 s
    on a router: waiting `quiet` (set for the inactive timeout) failed reconnects that were fine."""
    from monitor.config.flows_model import verify_flows

    default = verify_flows(True)
    assert default is not None and default.reconnect > 60.0 + default.skew
    custom = verify_flows({"quiet": "32s", "reconnect": "90s"})
    assert custom is not None and (custom.quiet, custom.reconnect) == (32.0, 90.0)
