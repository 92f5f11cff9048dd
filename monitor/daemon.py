"""Wires the daemon together: config -> scheduler -> probes -> engine -> log/metrics/store, plus the
HTTP server, reload (SIGHUP and POST /-/reload) and graceful shutdown (SIGTERM/SIGINT).

A reload that fails keeps the running config and sets monitor_config_last_reload_successful 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from monitor import fdlimit, heap
from monitor.availability.capacity_metrics import CapacityMonitor
from monitor.availability.capacity_recorder import CapacityRecorder
from monitor.availability.live import SLOTracker
from monitor.availability.metrics import SLOProvider
from monitor.availability.monthly import MonthlyJob
from monitor.availability.versions import ReportDesk
from monitor.clock import Clock, SystemClock
from monitor.cluster.ha import Leadership
from monitor.cluster.sharding import shard_inventory
from monitor.config.loader import ConfigError, LoadedConfig, load_config
from monitor.config.reload_guard import ALLOW_HINT, drops_everything
from monitor.config.traps import TrapsConfig
from monitor.config.types import parse_listen
from monitor.core.engine import Engine, Outcome, Transition
from monitor.core.inventory import Check, Inventory
from monitor.core.state import State
from monitor.flows.collector import FlowCollector, FlowMetrics, start_collector
from monitor.flows.records import FlowSink
from monitor.http.app import build_app, build_status_app
from monitor.http.events import EventHub
from monitor.http.listener import ConnectionGate, ListenerMetrics, resolve_limits, serve
from monitor.http.services import HttpServices
from monitor.incidents.acting_metrics import ActingMetrics
from monitor.incidents.response import ResponseSide
from monitor.metrics.exposition import DaemonMetrics, StateCollector
from monitor.pipeline import Pipeline
from monitor.replies.desk import ReplyDesk
from monitor.replies.receivers import Receiver, open_receivers
from monitor.scheduling.loopwatch import LoopWatch
from monitor.scheduling.runner import ProbeRunner
from monitor.scheduling.scheduler import Scheduler, SchedulerMetrics
from monitor.security.actions import SnmpControl
from monitor.security.desk import SecurityDesk, SecurityMetrics
from monitor.security.execute import Executor
from monitor.status.notices import NoticeDesk, split_by_shards
from monitor.status.page import StatusView
from monitor.store import open_store
from monitor.store.metrics import StoreCollector
from monitor.store.records import IncidentEvent
from monitor.traps.decode import TrapEvent
from monitor.traps.receiver import TrapMetrics, TrapReceiver
from probes.base import ProbeKind
from probes.registry import agent_kinds, close_probes, create_probes, interface_index

log = structlog.get_logger()
HEARTBEAT_SECONDS = 10.0
# how often the store learns the daemon is still watching: after kill -9 the run ends (and an outage seen
# before and after the restart resumes) at the last of these, so at most this much is lost
STORE_HEARTBEAT_SECONDS = 1.0


class Daemon:
    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        listen: str | None = None,
        data_dir: Path | None = None,
        trap_listen: str | None = None,
        flow_listen: str | None = None,
        shard: tuple[int, int] = (1, 1),
    ) -> None:
        self.config_path = loaded.path
        self.shard = shard
        inventory = shard_inventory(loaded.inventory, *shard)
        self._whole_inventory = loaded.inventory  # what a reload is compared with (all shards)
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        self.registry = registry
        self.clock = clock or SystemClock()
        self.listen = listen or inventory.daemon.listen
        self.data_dir = data_dir or inventory.daemon.data_dir
        self.metrics = DaemonMetrics(self.registry)
        self.engine = Engine(inventory)
        self.metrics.checks_in_gap.set_function(lambda: len(self.engine.gaps))
        self.descriptors = fdlimit.DescriptorCollector()
        self.registry.register(self.descriptors)
        self.state_collector = StateCollector(self.engine)
        self.store = open_store(self.inventory.daemon, self.data_dir)
        self.registry.register(StoreCollector(self.store))
        self.probes: dict[str, ProbeKind[Any]] = {}
        self.ready = False
        self.pipeline = Pipeline(self.engine, self.metrics, self.state_collector, self.store, self.clock.now)
        self.response = ResponseSide(self.store, self.clock, self.registry, self.engine, self.pipeline.dispatch)
        self.guard = self.response.guard
        self.incidents = self.response.incidents
        self.slo = SLOTracker(self.store, self.engine, self.clock.now)
        self.monthly = MonthlyJob(self.store, lambda: self.engine.inventory, self.data_dir, self.clock.now)
        self.state_collector.providers.append(SLOProvider(self.slo.status, lambda: self.engine.inventory))
        self.pipeline.actors.append(self.response)  # incidents and playbooks
        self.pipeline.observers.append(self.slo)  # live SLO figures
        self.leadership: Leadership | None = None  # HA on a shared PostgreSQL store: who acts
        self.route_hooks: list[Callable[[web.Application], None]] = []  # extra HTTP routes (the demo's)
        self.security = self._security_desk()
        self.pipeline.result_actors.append(self.security)  # interface counters of LGWAN connections
        self.capacity = CapacityRecorder(self.store, lambda: self.engine.inventory, self.clock.now)
        self.pipeline.result_actors.append(self.capacity)  # circuits' 5-minute traffic from the same counters
        self.capacity_figures = CapacityMonitor(
            self.store, lambda: self.engine.inventory, self.clock.now, self.capacity, lambda: self.leader
        )
        self.state_collector.providers.append(self.capacity_figures)
        self.notices = NoticeDesk(self.store, self.clock.now, lambda: self.inventory, self.response.outbox.wake)
        self.incidents.watchers.append(self.notices.on_incident)
        self.reports = ReportDesk(self.store, self.clock.now, lambda: self.inventory, self.response.outbox.wake)
        self.events = EventHub()  # live updates for the console
        self.pipeline.observers.append(self.events)
        self.incidents.watchers.append(self.events.on_incident)
        self.status_view = StatusView(self.store, self.engine, self.response.planned_windows, self.clock.now)
        self._status_http: web.AppRunner | None = None  # status_page.listen: the public page on its own address
        # replies to mail pages (incidents.mail_replies): acknowledge or escalate by answering the page
        self.acting = ActingMetrics(self.registry)  # link uses and mail replies, counted
        self.replies = ReplyDesk(
            self.store, self.incidents, lambda: self.inventory, self.clock.now, lambda: self.leader, self.acting
        )
        self._reply_receivers: list[Receiver] = []  # the SMTP listener, the IMAP poller
        self.trap_listeners: list[Callable[[TrapEvent], None]] = [self._security_trap]
        self.trap_listen = trap_listen  # overrides traps.listen (and enables the receiver without a traps section)
        self.flow_listen = flow_listen  # overrides flows.listen (shards on one host each need their own)
        self.trap_metrics = TrapMetrics(self.registry)
        self.traps: TrapReceiver | None = None
        # consumers of decoded flow records: the security desk judges them against each connection's flow policy
        self.flow_sinks: list[FlowSink] = [self.security]
        self.flow_metrics = FlowMetrics(self.registry)
        self.flows: FlowCollector | None = None
        self.loop_watch = LoopWatch()  # how late the event loop runs: a probe starved by it is a gap (runner)
        self._agents: dict[str, tuple[str, ...]] = {}  # address -> targets, for traps
        self._scheduler: Scheduler | None = None
        self._runner: ProbeRunner | None = None
        self._http: web.AppRunner | None = None
        # caps and timeouts of both HTTP listeners, sized against RLIMIT_NOFILE: probes keep their descriptors
        self.http_gate = ConnectionGate(resolve_limits(self.inventory.daemon.http), ListenerMetrics(self.registry))
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        soft, hard = fdlimit.raise_open_files_limit()  # descriptors for probing, before anything opens many
        log.info("open_files_limit", soft=soft, hard=hard)
        self.http_gate.limits = resolve_limits(self.inventory.daemon.http)  # sized against the raised limit
        now = self.clock.now()
        await asyncio.to_thread(self.store.open, now)
        resumed = self._resume()
        await self.slo.load()
        if self.store.lease is not None:  # a store shared by several daemons: act only when leading
            holder = f"{socket.gethostname()}:{self.listen}#{os.getpid()}"
            await self.store.lease.claim_shard("{}/{}".format(*self.inventory.shard))
            self.leadership = Leadership(
                self.store.lease, holder, self.inventory.daemon.lease, self._lead, self._follow
            )
            self.store.owns_intervals = False
            self.pipeline.leading = False
            self.metrics.leader.set(0)
        await self.response.start(lead=self.leader)
        if self.leader:
            await self._note_interruption(now)
            await self.security.start()
            self.monthly.start()
            await self.reports.start()
        self.probes = create_probes()
        self.loop_watch.start()
        self._runner = ProbeRunner(self.probes, self.clock, self.loop_watch)
        inv = self.inventory
        self._scheduler = Scheduler(
            self._execute,
            self.engine.is_confirming,
            SchedulerMetrics(self.registry),
            inv.daemon.max_concurrent_probes,
            inv.module_limits,
        )
        self._scheduler.set_checks(inv.checks)
        # outages open when the last run ended are probed first, not at their slot of the start-up spread:
        # until each is probed, whether it went on or ended during the gap is unknown time in the month
        self._scheduler.probe_soon(resumed)
        self.pipeline.recheck = self._scheduler.probe_soon
        self.state_collector.rebuild()
        self.state_collector.attached = True  # from here on results keep its text up to date
        self._count_config(inv)
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(now)
        host, port = parse_listen(self.listen)
        self._http = await serve(build_app(self.http_services()), host, port, self.http_gate)
        await self._start_status_listener(inv)
        self._index_agents(inv)
        await self._start_traps(inv)
        self._reply_receivers = await open_receivers(self.replies, inv.response.incidents.mail_replies)
        if inv.flows is not None:
            listen = parse_listen(self.flow_listen) if self.flow_listen else None
            self.flows = await start_collector(inv.flows, self.flow_metrics, self.flow_sinks, listen)
        self._spawn(self._heartbeat())
        self._spawn(self.capacity.run())
        self._spawn(self.capacity_figures.run())
        if self.leadership is not None:
            await self.leadership.step()  # leader at once when the lease is free; ready either way
            self._spawn(self.leadership.run())
        self._install_signals()
        heap.tune_collector()
        heap.settle()
        self.ready = True
        log.info(
            "daemon_started",
            listen=self.listen,
            checks=len(inv.checks),
            services=len(inv.services),
            data_dir=str(self.data_dir),
            config=str(self.config_path),
            http_max_connections=self.http_gate.limits.max_connections,
            http_max_per_source=self.http_gate.limits.max_per_source,
            nofile=self.http_gate.limits.nofile,
        )

    async def run(self) -> None:
        """Start, then serve until SIGTERM/SIGINT or stop()."""
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()

    def stop(self) -> None:
        self._stopping.set()

    async def shutdown(self) -> None:
        self.ready = False
        log.info("daemon_stopping")
        if self._scheduler is not None:
            await self._scheduler.stop()
        if self._http is not None:
            await self._http.cleanup()
        if self._status_http is not None:
            await self._status_http.cleanup()
        for receiver in self._reply_receivers:
            await receiver.stop()
        await self.notices.stop()
        await self.reports.stop()
        await self.security.stop()
        await self.response.stop()
        self.monthly.stop()
        if self.traps is not None:
            self.traps.close()
        if self.flows is not None:
            self.flows.close()
        self.loop_watch.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await close_probes(self.probes)
        if self.leadership is not None:
            await self.leadership.release()
        await self.store.close(self.clock.now())
        self.descriptors.close()
        log.info("daemon_stopped")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            loop.add_signal_handler(signal.SIGINT, self.stop)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests embedding the daemon)
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _heartbeat(self) -> None:
        beats = max(1, round(HEARTBEAT_SECONDS / STORE_HEARTBEAT_SECONDS))
        while True:
            self.response.update_gauges()
            self.slo.prune()
            for _ in range(beats):
                self.store.heartbeat(self.clock.now())
                await asyncio.sleep(STORE_HEARTBEAT_SECONDS)

    def _resume(self) -> list[str]:
        """Checks DOWN or UNREACHABLE when the previous run ended start from there (see Engine.resume)."""
        prior = self.store.resumable_checks()
        if prior:
            self.engine.resume({cid: (State(state), since, reason) for cid, (state, since, reason) in prior.items()})
            log.info("outages_resumed", checks=len(prior))
        return list(prior)

    async def _note_interruption(self, now: float) -> None:
        """The previous run ended (crash or stop) with incidents open: each timeline says monitoring was
        interrupted, and for how long, so nobody reads the gap as "nothing happened"."""
        previous = self.store.previous_run
        if previous is None:
            return
        ended, unclean = previous
        detail = {"from": ended, "to": now, "seconds": round(now - ended, 3), "unclean": unclean,
                  "text": "monitoring interrupted: the daemon " + ("died" if unclean else "was stopped")
                  + f" and was not watching for {now - ended:.0f} s"}  # fmt: skip
        for incident in await self.store.open_incidents():
            await self.store.add_events(
                incident.id, IncidentEvent(incident.id, now, "monitoring_interrupted", "system", detail)
            )

    async def _start_status_listener(self, inventory: Inventory) -> None:
        """The public status page alone on its own address (e.g. the LGWAN side), when configured."""
        split = split_by_shards(inventory)
        if split:
            log.warning("status_page_split_by_shards", services=split,
                        hint="not on this shard's status page: their members are on several shards; serve the "
                             "page from an unsharded daemon (an HA pair sees the whole estate)")  # fmt: skip
        page = inventory.status_page
        if page is None or page.listen is None:
            return
        host, port = parse_listen(page.listen)
        self._status_http = await serve(build_status_app(self.http_services()), host, port, self.http_gate)
        log.info("status_page_listening", listen=page.listen)

    def http_services(self) -> HttpServices:
        """What the HTTP handlers may use of the daemon (and nothing more)."""
        return HttpServices(
            engine=self.engine,
            inventory=lambda: self.inventory,
            store=self.store,
            guard=self.guard,
            incidents=self.incidents,
            security=self.security,
            notices=self.notices,
            reports=self.reports,
            status_view=self.status_view,
            events=self.events,
            gate=self.http_gate,
            registry=self.registry,
            state_collector=self.state_collector,
            leader=lambda: self.leader,
            ready=lambda: self.ready,
            reload=self.reload,
            maintenance_changed=self.maintenance_changed,
            extra_routes=tuple(self.route_hooks),
            acting=self.acting,
        )

    # --- the disconnect playbook ------------------------------------------------------------

    def _security_desk(self) -> SecurityDesk:
        def probe_soon(checks: Iterable[str]) -> None:
            if self._scheduler is not None:
                self._scheduler.probe_soon(checks)

        def last_result(check_id: str) -> Any:
            rt = self.engine.checks.get(check_id)
            return rt.last if rt is not None else None

        def ifindex(check_id: str) -> int | None:
            interfaces = interface_index(self.probes)
            return interfaces.ifindex(check_id) if interfaces is not None else None

        def machine_up(check_id: str) -> bool:
            rt = self.engine.checks.get(check_id)
            return rt is not None and rt.machine.state == State.UP

        executor = Executor(SnmpControl(), probe_soon, last_result, machine_up)
        desk = SecurityDesk(
            self.store, self.clock, lambda: self.inventory, self.incidents, executor, ifindex,
            self.response.maintenance_changed, self.response.outbox.wake, SecurityMetrics(self.registry),
        )  # fmt: skip
        self.response.extra_windows.append(desk.windows)
        return desk

    # --- traps -----------------------------------------------------------------------------

    async def _start_traps(self, inventory: Inventory) -> None:
        config = inventory.traps
        if config is None and self.trap_listen is None:
            return
        if config is None:
            config = TrapsConfig()
        listen = parse_listen(self.trap_listen) if self.trap_listen else None
        assert self._scheduler is not None
        receiver = TrapReceiver(
            config,
            self.trap_metrics,
            lambda agent: agent in self._agents,
            self._trap_checks,
            self._scheduler.probe_soon,
            self.trap_listeners,
            listen,
        )
        try:
            await receiver.start()
        except OSError as exc:  # e.g. port 162 without root: the daemon still polls; the log says why
            host, port = receiver.address
            log.error("trap_listener_failed", listen=f"{host}:{port}", error=exc.strerror or str(exc))
            self.trap_metrics.up.labels(f"{host}:{port}").set(0)
            return
        host, port = receiver.address
        self.trap_metrics.up.labels(f"{host}:{port}").set(1)
        self.traps = receiver
        self._spawn(receiver.watch_rejections())

    def _reconfigure_traps(self, inventory: Inventory) -> None:
        new, old = inventory.traps, self.traps.config if self.traps is not None else None
        if new is None or old is None:
            if (new is None) != (old is None) and self.trap_listen is None:
                log.warning("config_change_needs_restart", key="traps")
            return
        for key in ("listen", "communities", "v3_users"):
            if getattr(new, key) != getattr(old, key):
                log.warning("config_change_needs_restart", key=f"traps.{key}")
        assert self.traps is not None
        self.traps.reconfigure(new)

    def _reconfigure_flows(self, inventory: Inventory) -> None:
        """Exporters, sampling and limits apply at once; starting, stopping or moving the listener needs a restart."""
        old = self.flows.config if self.flows is not None else None
        new = inventory.flows
        if new is None or old is None:
            if new is not None or old is not None:
                log.warning("config_change_needs_restart", key="flows")
            return
        if new.listen != old.listen:
            log.warning("config_change_needs_restart", key="flows.listen")
        assert self.flows is not None
        self.flows.reconfigure(new)

    def _index_agents(self, inventory: Inventory) -> None:
        agents: dict[str, list[str]] = {}
        for target in inventory.targets.values():
            agents.setdefault(target.address, []).append(target.name)
        self._agents = {k: tuple(v) for k, v in agents.items()}

    def _trap_checks(self, agent: str, interfaces: set[int], device: bool) -> list[str]:
        """The SNMP checks a trap from `agent` concerns: interface checks watching the named ifIndexes
        (device checks when none watches it, so the interface's series are fresh), or all of them."""
        inv = self.inventory
        checks = [c for t in self._agents.get(agent, ()) for c in inv.checks_by_target.get(t, ())]
        agents = agent_kinds()  # the kinds that poll the device's agent, which is what sent the trap
        snmp = [c for c in checks if inv.checks[c].kind in agents]
        if device or not interfaces:
            return snmp
        mapping = interface_index(self.probes)
        devices = [c for c in snmp if "interface" not in inv.checks[c].request.params]
        chosen: list[str] = []
        for index in interfaces:
            watching = mapping.checks_for_ifindex(snmp, index) if mapping is not None else []
            chosen.extend(watching or devices)
        return list(dict.fromkeys(chosen))

    # --- the probe path --------------------------------------------------------------------

    async def _execute(self, check: Check) -> None:
        assert self._runner is not None
        self.pipeline.result(check, await self._runner.run(check))

    # --- HA ----------------------------------------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        """What is watched now: the engine's (a reload hands the engine the new one, nobody else keeps it)."""
        return self.engine.inventory

    @property
    def leader(self) -> bool:
        """Whether this daemon acts (pages, cuts, writes intervals): always without HA; with HA, the pipeline's
        switch, which `_lead` and `_follow` flip as the lease is won and lost."""
        return self.pipeline.leading

    def _security_trap(self, event: TrapEvent) -> None:
        if self.leader:
            self.security.on_trap(event)

    async def _lead(self, since: float | None) -> None:
        self.store.owns_intervals = True
        self.pipeline.leading = True
        if since is not None and self.store.lease is not None:
            await self.store.lease.close_open_intervals(since)
        await self.response.lead()
        await self.security.start()
        self.monthly.start()
        await self.reports.start()
        view = self._current_view()
        if view.transitions:  # what this daemon sees now, as the incidents and the intervals must show it
            self.store.record(view.transitions)
            self.response.on_outcome(view)
        self.metrics.leader.set(1)

    async def _follow(self) -> None:
        self.store.owns_intervals = False
        self.pipeline.leading = False
        await self.response.follow()
        await self.security.stop()
        self.monthly.stop()
        await self.reports.stop()
        self.metrics.leader.set(0)

    def _current_view(self) -> Outcome:
        now = self.clock.now()
        view = Outcome()
        for cid, rt in self.engine.checks.items():
            if rt.check.exported and rt.state != State.UNKNOWN:
                view.transitions.append(
                    Transition("check", cid, State.UNKNOWN, rt.state, now, rt.reason, rt.root_cause)
                )
        for name, srt in self.engine.services.items():
            if srt.state != State.UNKNOWN:
                view.transitions.append(Transition("service", name, State.UNKNOWN, srt.state, now))
        return view

    # --- reload ----------------------------------------------------------------------------

    async def reload(self, allow_empty: bool = False) -> tuple[bool, list[str]]:
        """Re-read the config; a broken one, or one dropping every target, service or credential (unless
        `allow_empty`), is refused and the running config carries on."""
        async with self._reload_lock:
            try:
                loaded = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self._reload_failed("config_reload_failed", exc.messages)
                return False, exc.messages
            dropped = drops_everything(self._whole_inventory, loaded.inventory)
            if dropped and not allow_empty:
                errors = [f"{self.config_path}: reload refused: {problem}" for problem in dropped] + [ALLOW_HINT]
                self._reload_failed("config_reload_refused", errors)
                return False, errors
            self._whole_inventory = loaded.inventory
            inventory = shard_inventory(loaded.inventory, *self.shard)
            self._apply(inventory)
            await self.response.reload(inventory)
            self.security.reload()
            self.capacity.reload()
            heap.settle()
            self.metrics.reload_success.set(1)
            self.metrics.reload_timestamp.set(self.clock.now())
            self.metrics.reloads.labels("success").inc()
            log.info("config_reloaded", checks=len(inventory.checks), services=len(inventory.services))
            return True, []

    def _reload_failed(self, event: str, errors: list[str]) -> None:
        self.metrics.reload_success.set(0)
        self.metrics.reloads.labels("failure").inc()
        log.error(event, config=str(self.config_path), errors=errors)

    def _apply(self, inventory: Inventory) -> None:
        if inventory.daemon.listen != self.inventory.daemon.listen:
            log.warning("config_change_needs_restart", key="daemon.listen")
        if inventory.daemon.data_dir != self.inventory.daemon.data_dir:
            log.warning("config_change_needs_restart", key="daemon.data_dir")
        new, old = (i.response.incidents.mail_replies for i in (inventory, self.inventory))
        if ((new.listen, new.imap) if new else None) != ((old.listen, old.imap) if old else None):
            log.warning("config_change_needs_restart", key="incidents.mail_replies")  # (its listener and poller)
        old_probes = self.probes
        self.probes = create_probes(old_probes)  # fresh TLS contexts (rotated CA files apply); SNMP state inherited
        if self._runner is not None:
            self._runner.probes = self.probes
        self.pipeline.dispatch(self.engine.apply_inventory(inventory, self.clock.now()))
        self.state_collector.rebuild()  # removed checks and services leave /metrics
        if self._scheduler is not None:
            self._scheduler.set_limits(inventory.daemon.max_concurrent_probes, inventory.module_limits)
            self._scheduler.set_checks(inventory.checks)
        self._count_config(inventory)
        self._index_agents(inventory)
        self._reconfigure_traps(inventory)
        self._reconfigure_flows(inventory)
        grace = max((c.timeout for c in inventory.checks.values()), default=0.0) + 1.0
        self._spawn(self._close_later(old_probes, grace))

    async def maintenance_changed(self) -> None:
        await self.response.maintenance_changed()

    @staticmethod
    async def _close_later(probes: dict[str, ProbeKind[Any]], delay: float) -> None:
        await asyncio.sleep(delay)  # let probes that started before the reload finish with their sessions
        await close_probes(probes)

    def _count_config(self, inventory: Inventory) -> None:
        kinds = Counter(c.kind for c in inventory.checks.values() if c.exported)
        self.metrics.context_checks.set(sum(not c.exported for c in inventory.checks.values()))
        self.metrics.shard.clear()
        self.metrics.shard.labels(str(inventory.shard[0]), str(inventory.shard[1])).set(1)
        self.metrics.checks.clear()
        for kind, count in kinds.items():
            self.metrics.checks.labels(kind).set(count)
        self.metrics.services.set(len(inventory.services))


def load_daemon(config_path: Path, **kwargs: Any) -> Daemon:
    return Daemon(load_config(config_path), **kwargs)
