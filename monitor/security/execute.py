"""Carrying out one step (cut or reconnect) of a security incident and verifying that it took.

A step is recorded as started in the store before anything is sent, and as finished after. A daemon
killed in between finds the step started but not finished: for an SNMP SET it reads ifAdminStatus
first and sends nothing if the device already has the wanted value; webhooks and commands are sent
again with the same idempotency key. Verification then decides, whatever happened before.

Verification of a cut: ifAdminStatus down and ifOperStatus not up; traffic on the interface at most
`max_rate_bytes`; a fresh probe of each of the organisation's targets fails; with `verify.flows`, no
flow from the organisation for `quiet` seconds after the cut. Of a reconnect: the interface up again,
the organisation's targets answering, and (with `verify.flows`) a flow from it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from monitor.config.flows_model import VerifyFlows
from monitor.config.security_model import Connection, SecurityPlaybook
from monitor.flows.watch import Activity
from monitor.security.actions import ADMIN, ActionError, SnmpControl, call_webhook, run_command
from monitor.store.records import SecurityIncident

POLL_SECONDS = 0.25  # how often the interface is read while waiting for it to change
TRAFFIC_SAMPLE_SECONDS = 0.5


@dataclass
class Edge:
    """What the executor needs to know about the connection's edge device and the organisation."""

    device: str  # target name
    address: str
    interface: str  # as configured on the check
    if_index: int | None
    read_settings: Any  # the check's SnmpSettings (for verification when the action is not SNMP)
    org_checks: list[str]  # check ids of the organisation's targets


def action_body(
    incident: SecurityIncident, connection: Connection, edge: Edge, step: str, attempt: int
) -> dict[str, Any]:
    """What a webhook receives (and a command in its environment). The idempotency key is the same
    when a step is resumed after a restart and new for a retry after a failure."""
    return {
        "version": 1,
        "action": step,
        "security_incident": incident.id,
        "idempotency_key": f"security-{incident.id}-{step}-{attempt}",
        "connection": connection.name,
        "organisation": connection.organisation,
        "device": edge.device,
        "address": edge.address,
        "interface": edge.interface,
        "if_index": edge.if_index,
    }


class Executor:
    def __init__(
        self,
        snmp: SnmpControl,
        probe_soon: Callable[[Iterable[str]], None],
        last_result: Callable[[str], Any],
        machine_up: Callable[[str], bool],
    ) -> None:
        self.snmp = snmp
        self.probe_soon = probe_soon
        self.last_result = last_result  # check id -> its latest ProbeResult (or None)
        self.machine_up = machine_up  # check id -> is its own state (under any maintenance) UP?

    async def apply(
        self,
        incident: SecurityIncident,
        connection: Connection,
        book: SecurityPlaybook,
        edge: Edge,
        attempt: int,
        resumed: bool,
    ) -> str:
        """Send the action of the incident's current step; returns what the device or receiver said."""
        step = incident.step
        action = book.action
        if action.kind == "snmp_set":
            assert action.snmp is not None
            if edge.if_index is None:  # not known when the cut was proposed: ask the device
                edge.if_index = await self.snmp.find_index(action.snmp, edge.address, edge.interface)
            if edge.if_index is None:
                raise ActionError(f"{edge.device} ({edge.address}) has no interface {edge.interface}")
            wanted = ADMIN[step]
            if resumed:
                status = await self.snmp.status(action.snmp, edge.address, edge.if_index)
                if status.admin == wanted:
                    return f"ifAdminStatus.{edge.if_index} was already {wanted}: not sent again"
            await self.snmp.set_admin(action.snmp, edge.address, edge.if_index, wanted)
            return f"ifAdminStatus.{edge.if_index} set to {wanted} on {edge.address}"
        body = action_body(incident, connection, edge, step, attempt)
        if action.kind == "webhook":
            return await call_webhook(action, body)
        return await run_command(action, body)

    async def verify(
        self,
        incident: SecurityIncident,
        connection: Connection,
        book: SecurityPlaybook,
        edge: Edge,
        since: float,
        flows: Callable[[], Activity | None] | None = None,
    ) -> tuple[bool, list[str]]:
        """(verified, findings) for the current step, waiting up to verify.timeout (and, by flows, the
        quiet period after a cut). `flows` is the connection's latest flow, from the flow policy."""
        cut = incident.step == "cut"
        deadline = time.monotonic() + book.verify.timeout
        jobs = []
        creds = book.action.snmp if book.action.kind == "snmp_set" else edge.read_settings
        if book.verify.interface and edge.if_index is not None and creds is not None:
            jobs.append(self._interface(creds, edge, cut, book.verify.max_rate_bytes if cut else None, deadline))
        if book.verify.targets and edge.org_checks:
            jobs.append(self._targets(edge.org_checks, cut, since, deadline))
        if (by_flows := book.verify.flows) is not None:
            within = max(book.verify.timeout, by_flows.quiet if cut else by_flows.reconnect)
            jobs.append(self._flows(by_flows, flows, cut, since, within))
        if not jobs:
            return True, ["nothing to verify (verify.interface and verify.targets are off or not possible)"]
        results = await asyncio.gather(*jobs)
        return all(ok for ok, _ in results), [line for _, line in results]

    async def _interface(
        self, creds: Any, edge: Edge, cut: bool, max_rate: float | None, deadline: float
    ) -> tuple[bool, str]:
        assert edge.if_index is not None
        last = "no answer from the device"
        while True:
            try:
                status = await self.snmp.status(creds, edge.address, edge.if_index)
                last = f"ifAdminStatus {status.admin}, ifOperStatus {status.oper}"
                done = (status.admin == 2 and status.oper != 1) if cut else (status.admin == 1 and status.oper == 1)
                if done:
                    break
            except ActionError as exc:
                last = str(exc)
            if time.monotonic() + POLL_SECONDS > deadline:
                return False, f"interface: not {'down' if cut else 'up'} in time ({last})"
            await asyncio.sleep(POLL_SECONDS)
        if max_rate is None or status.octets is None:
            return True, f"interface: {'down' if cut else 'up'} ({last})"
        await asyncio.sleep(TRAFFIC_SAMPLE_SECONDS)
        try:
            later = await self.snmp.status(creds, edge.address, edge.if_index)
        except ActionError as exc:
            return False, f"traffic: could not read the counters again: {exc}"
        if later.octets is None:
            return True, f"interface: down ({last}); traffic not readable"
        rate = max(0, later.octets - status.octets) / max(later.at - status.at, 1e-3)
        if rate > max_rate:
            return False, f"traffic: still {rate:,.0f} bytes/s after the cut (at most {max_rate:,.0f})"
        return True, f"interface: down ({last}); traffic {rate:,.0f} bytes/s"

    async def _targets(self, checks: list[str], cut: bool, since: float, deadline: float) -> tuple[bool, str]:
        """A fresh result (a probe started after the action) of every check of the organisation's targets:
        failures after a cut, successes after a reconnect."""
        pending = set(checks)
        asked = time.monotonic()
        self.probe_soon(sorted(pending))
        while pending:
            for check_id in list(pending):
                result = self.last_result(check_id)
                fresh = result is not None and result.finished_at - result.duration >= since  # started after the action
                if fresh and result.ok != cut:
                    pending.discard(check_id)
            if not pending:
                break
            if time.monotonic() + POLL_SECONDS > deadline:
                state = "still answering" if cut else "not answering"
                return False, f"targets: {len(pending)} of {len(checks)} {state} ({', '.join(sorted(pending)[:5])})"
            if time.monotonic() - asked > 1.0:  # no fresh result yet (the probe was busy): ask again
                self.probe_soon(sorted(pending))
                asked = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)
        return True, f"targets: all {len(checks)} {'unreachable' if cut else 'answering'}"

    async def _flows(
        self,
        config: VerifyFlows,
        latest: Callable[[], Activity | None] | None,
        cut: bool,
        since: float,
        within: float,
    ) -> tuple[bool, str]:
        """After a cut: no flow whose last packet is after the cut (give or take the exporter's clock skew)
        arrives within `quiet`. After a reconnect: one does, within `within`. Never having received a
        flow from the organisation proves nothing about the cut: it fails as not verifiable (a local
        fault: export or collector), not as traffic."""
        if latest is None:
            return False, "flows: no flow collector in this daemon: cannot verify by flows"
        if cut:
            if latest() is None:
                return False, (
                    "flows: no flow from the organisation was received since the daemon started, so their absence"
                    " proves nothing (is the router's flow export reaching the collector?)"
                )
            await asyncio.sleep(config.quiet)
            seen = latest()
            assert seen is not None
            after = seen.last_seen - since
            if after > config.skew:
                return False, f"flows: still arriving after the cut (the latest ended {after:.1f}s after it)"
            return True, (
                f"flows: none from the organisation for {config.quiet:g}s after the cut"
                f" (the latest ended {-after:.1f}s before it)"
            )
        deadline = time.monotonic() + within
        while True:
            seen = latest()
            if seen is not None and seen.last_seen > since:
                return True, f"flows: from the organisation again ({seen.last_seen - since:.1f}s after the reconnect)"
            if time.monotonic() + POLL_SECONDS > deadline:
                return False, f"flows: none from the organisation within {within:g}s of the reconnect"
            await asyncio.sleep(POLL_SECONDS)

    async def settle(self, checks: list[str], within: float) -> list[str]:
        """After a reconnect: wait until these checks are UP by their own probes (successes_to_up), so
        that lifting the desk's maintenance window shows no stale DOWN. Returns those still not UP."""
        deadline = time.monotonic() + within
        self.probe_soon(checks)
        while True:
            waiting = [c for c in checks if not self.machine_up(c)]
            if not waiting or time.monotonic() > deadline:
                return waiting
            await asyncio.sleep(POLL_SECONDS)
