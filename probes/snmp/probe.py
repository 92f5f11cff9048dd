"""SNMP probe (v1, v2c, v3): device checks and interface checks of network equipment.

- A device check (no `interface:` on the check) reads the system group (sysUpTime for reboots,
  sysName, sysDescr, sysObjectID), the selected interfaces' status and counters, and the module's
  extra OIDs. It is ok when the agent answers and no threshold is violated; interfaces being down
  do not fail it (their status is in the series; circuits that matter are interface checks).
- An interface check (`interface: Gi0/1`, an ifName, ifDescr, ifAlias or ifIndex) reads one row and
  fails on a link down: admin up but oper down (and, unless `admin_down: ok`, admin down).

What a check remembers between polls (counters, last sysUpTime, the ifIndex -> label cache, reboot
count) is kept per check id in this instance; the daemon hands it to the next instance on a config
reload (`inherit`). One UDP socket for v1/v2c and one for v3 (with the agents' engine ids, clocks and
localized keys) per instance, created lazily and closed by `close()`.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from probes.base import AGENT_NOT_RESPONDING, Family, Measure, PhaseTimer, ProbeRequest, ProbeResult, Series
from probes.net import ResolveError, resolve
from probes.snmp import ifmib, oids
from probes.snmp.ber import OID, Value
from probes.snmp.counters import DeviceState, observe_uptime, uptime_seconds
from probes.snmp.ifmib import (
    describe,
    find_interface,
    interface_series,
    link_problem,
    read_labels,
    read_rows,
    selected,
)
from probes.snmp.oids import evaluate_oids
from probes.snmp.settings import SnmpSettings
from probes.snmp.transport import CommunitySession, Session, SnmpError, SnmpTimeout, UdpDispatcher
from probes.snmp.usm_client import V3Factory, V3Session
from probes.snmp.walk import get_many

log = structlog.get_logger()
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
SYS_OBJECT_ID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)
DEADLINE_MARGIN = 0.05  # seconds: answer with our own reason before the runner's timeout cancels us


UP = Family("monitor_snmp_up", "1 if the SNMP agent answered the last poll.", "gauge", ())
UPTIME = Family("monitor_device_uptime_seconds", "sysUpTime of the device's agent.", "gauge", ())
REBOOTS = Family("monitor_device_reboots_total", "Reboots seen (sysUpTime went back).", "counter", ())


def _up(value: float) -> Series:
    return UP.sample((), value)


def _text(value: Value | None, limit: int = 256) -> str:
    if value is None:
        return ""
    raw = value[1]
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace").strip("\x00").strip()[:limit]
    if isinstance(raw, tuple):
        return ".".join(map(str, raw))
    return str(raw)


class SnmpProbe:
    name = "snmp"
    settings_model = SnmpSettings
    measures: tuple[Measure, ...] = ()  # what it reads are labelled series
    series: tuple[Family, ...] = (UP, UPTIME, REBOOTS, *ifmib.FAMILIES, *oids.FAMILIES)
    phases: tuple[str, ...] = ("resolve", "system", "labels", "interfaces", "oids")
    polls_agent = True  # an agent that does not answer on a device that does is "SNMP agent down"

    def __init__(self) -> None:
        self.states: dict[str, DeviceState] = {}
        self._dispatchers: dict[int, UdpDispatcher] = {}
        self._v3 = V3Factory()

    # --- lifecycle -------------------------------------------------------------------------

    def inherit(self, old: Any) -> None:
        """Take over the poll state of the instance this one replaces (config reload)."""
        if isinstance(old, SnmpProbe):
            self.states = old.states

    async def close(self) -> None:
        for dispatcher in self._dispatchers.values():
            dispatcher.close()
        self._dispatchers.clear()
        self._v3.close()

    def ifindex(self, check_id: str) -> int | None:
        """The ifIndex an interface check watches, as last resolved on the device (None: not yet, or a device check)."""
        state = self.states.get(check_id)
        return state.ifindex if state is not None else None

    def checks_for_ifindex(self, check_ids: list[str], ifindex: int) -> list[str]:
        """Of these checks, the interface checks watching `ifindex` (for traps naming an interface)."""
        return [c for c in check_ids if (s := self.states.get(c)) is not None and s.ifindex == ifindex]

    @property
    def dispatcher_stats(self) -> dict[str, int]:
        v3 = self._v3.stats
        return {
            "malformed": sum(d.malformed for d in self._dispatchers.values()) + v3.malformed,
            "unmatched": sum(d.unmatched for d in self._dispatchers.values()) + v3.unmatched,
            "v3_wrong_digest": v3.wrong_digest,  # answers dropped for a MAC that is not the user's
            "v3_replayed": v3.replayed,
            "v3_rejected": v3.rejected,
        }

    async def _session(self, address: str, port: int, settings: SnmpSettings) -> Session:
        ip = await resolve(address)
        if settings.version == "3":
            return await self._v3.session(ip, port, settings)
        dispatcher = self._dispatchers.get(settings.max_requests_in_flight)
        if dispatcher is None:
            dispatcher = self._dispatchers[settings.max_requests_in_flight] = UdpDispatcher(
                settings.max_requests_in_flight
            )
        assert settings.community is not None
        return CommunitySession(
            dispatcher,
            (ip, port),
            settings.version,
            settings.community.get_secret_value().encode(),
            settings.timeout,
            settings.retries,
        )

    # --- the probe -------------------------------------------------------------------------

    async def run(self, request: ProbeRequest, settings: SnmpSettings) -> ProbeResult:
        timer = PhaseTimer()
        result = ProbeResult(ok=True, phases=timer.phases)
        deadline = time.monotonic() + request.timeout - DEADLINE_MARGIN
        key = request.check_id or f"{request.address}:{settings.port}"
        state = self.states.setdefault(key, DeviceState())
        interface = request.params.get("interface")
        try:
            session = await self._session(request.address, request.port or settings.port, settings)
            timer.mark("resolve")
            if interface is None:
                await self._device(session, settings, state, result, timer, deadline, key)
            else:
                await self._interface(session, settings, state, str(interface), result, timer, deadline)
        except ResolveError as exc:
            return ProbeResult.failure(str(exc), phases=timer.phases, series=[_up(0.0)])
        except SnmpTimeout as exc:
            return ProbeResult.failure(f"SNMP agent not responding: {exc}", phases=timer.phases, series=[_up(0.0)],
                                       info={AGENT_NOT_RESPONDING: "timeout"})  # fmt: skip
        except SnmpError as exc:
            return ProbeResult.failure(f"SNMP error: {exc}", phases=timer.phases, series=[_up(0.0)],
                                       info={AGENT_NOT_RESPONDING: "error"})  # fmt: skip
        return result

    async def _system(
        self, session: Session, state: DeviceState, extra: list[OID], deadline: float, key: str
    ) -> dict[OID, Value]:
        got = await get_many(session, [SYS_UPTIME, SYS_NAME, SYS_DESCR, SYS_OBJECT_ID, *extra], deadline)
        ticks = got.get(SYS_UPTIME)
        if ticks is None or not isinstance(ticks[1], int):
            raise SnmpError("agent does not report sysUpTime")
        if observe_uptime(state, ticks[1], time.monotonic(), time.time()) == "reboot":
            log.warning("device_rebooted", check=key, uptime_seconds=ticks[1] / 100, reboots=state.reboots)
        return got

    async def _ensure_labels(
        self, session: Session, settings: SnmpSettings, state: DeviceState, deadline: float
    ) -> None:
        if state.labels_stale(settings.label_refresh_cycles):
            await read_labels(session, settings, state, deadline)

    async def _device(
        self,
        session: Session,
        settings: SnmpSettings,
        state: DeviceState,
        result: ProbeResult,
        timer: PhaseTimer,
        deadline: float,
        key: str,
    ) -> None:
        scalars = [o.oid for o in settings.oids if not o.table]
        got = await self._system(session, state, scalars, deadline, key)
        wall = time.time()
        timer.mark("system")
        result.info.update(sys_name=_text(got.get(SYS_NAME)), sys_object_id=_text(got.get(SYS_OBJECT_ID)))
        result.info["sys_descr"] = _text(got.get(SYS_DESCR), 200)
        series = result.series
        series.append(_up(1.0))
        series.append(UPTIME.sample((), uptime_seconds(state)))
        series.append(REBOOTS.sample((), float(state.reboots)))
        if state.last_reboot_at is not None:
            result.values["last_reboot_timestamp_seconds"] = state.last_reboot_at
        await self._ensure_labels(session, settings, state, deadline)
        timer.mark("labels")
        indexes = selected(settings, state)
        result.info["interfaces"] = f"{len(indexes)} of {len(state.labels)} selected"
        if indexes:
            rows = await read_rows(session, settings, state, indexes, deadline)
            for index, row in rows.items():
                if row:
                    series.extend(interface_series(state, index, row, state.uptime_ticks, wall))
            if any(not row for row in rows.values()):
                state.polls_since_labels = None  # an interface went away: re-read the labels next time
        timer.mark("interfaces")
        problems, degraded = await evaluate_oids(session, settings, got, series, deadline)
        timer.mark("oids")
        if state.polls_since_labels is not None:
            state.polls_since_labels += 1
        if problems:
            result.ok, result.error = False, "; ".join(problems)
        elif degraded:
            result.degraded = "; ".join(degraded)

    async def _interface(
        self,
        session: Session,
        settings: SnmpSettings,
        state: DeviceState,
        wanted: str,
        result: ProbeResult,
        timer: PhaseTimer,
        deadline: float,
    ) -> None:
        await self._system(session, state, [], deadline, "")
        wall = time.time()
        timer.mark("system")
        await self._ensure_labels(session, settings, state, deadline)
        index = find_interface(state, wanted)
        if index is None and state.polls_since_labels != 0:  # the cache may be old: read once more
            await read_labels(session, settings, state, deadline)
            index = find_interface(state, wanted)
        timer.mark("labels")
        result.series.append(_up(1.0))
        if index is None:
            state.ifindex = None
            result.ok, result.error = False, f'interface "{wanted}" not found on the device'
            return
        state.ifindex = index
        rows = await read_rows(session, settings, state, [index], deadline)
        row = rows.get(index, {})
        timer.mark("interfaces")
        state.polls_since_labels = (state.polls_since_labels or 0) + 1
        lb = state.labels.get(index)
        result.info["interface"] = describe(lb, index)
        if not row:
            state.polls_since_labels = None
            result.ok, result.error = False, f"interface {describe(lb, index)} vanished from ifTable"
            return
        result.series.extend(interface_series(state, index, row, state.uptime_ticks, wall))
        problem = link_problem(row, settings.admin_down)
        if problem is not None:
            result.ok, result.error = False, f"{describe(lb, index)}: {problem}"


__all__ = ["SnmpProbe", "V3Session"]
