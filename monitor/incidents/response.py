"""The response side of the daemon, wired together: incidents, the outbox and its notifiers,
maintenance windows, API tokens and the audit guard. The daemon owns one and feeds it outcomes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog
from prometheus_client import CollectorRegistry, Gauge

from monitor.access.auth import Guard, Tokens
from monitor.clock import Clock
from monitor.core.engine import Engine, Outcome
from monitor.core.inventory import Inventory
from monitor.incidents.maintenance import MaintenanceDriver, from_config
from monitor.incidents.manager import IncidentManager
from monitor.incidents.outbox import OutboxMetrics, OutboxWorker
from monitor.notifiers.base import Notifier
from monitor.notifiers.registry import create_notifiers
from monitor.oncall.handover import HandoverDesk
from monitor.store.base import Store
from monitor.store.records import MaintenanceWindow

log = structlog.get_logger()


class ResponseSide:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: CollectorRegistry,
        engine: Engine,
        dispatch: Callable[[Outcome], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.engine = engine  # never replaced: a reload changes its inventory
        self._dispatch = dispatch
        self.tokens = Tokens(engine.inventory.response.auth)
        self.guard = Guard(lambda: self.tokens, store, clock)
        self.notifiers: dict[str, Notifier] = create_notifiers(engine.inventory.response.notifiers)
        self.outbox = OutboxWorker(store, clock, lambda: self.notifiers, OutboxMetrics(registry))
        self.incidents = IncidentManager(store, clock, engine, self.outbox.wake)
        # the incoming shift's summary at each shift change (monitor.oncall.handover)
        self.handover = HandoverDesk(
            store, clock, self.incidents.roster, engine, self.incidents.open.values, self.planned_windows,
            self.outbox.wake,
        )  # fmt: skip
        self._stored_windows: list[MaintenanceWindow] = []
        self.extra_windows: list[Callable[[], Iterable[MaintenanceWindow]]] = []  # e.g. connections cut on purpose
        self.maintenance = MaintenanceDriver(
            self._windows, lambda: engine.inventory, self._apply_maintenance, clock.now
        )
        self._open_gauge = Gauge(
            "monitor_incidents_open",
            "Open incidents by severity and status.",
            ["severity", "status"],
            registry=registry,
        )
        self._level_gauge = Gauge(
            "monitor_incidents_escalation_level",
            "Open incidents by escalation level reached.",
            ["level"],
            registry=registry,
        )
        self._maintenance_gauge = Gauge(
            "monitor_checks_in_maintenance", "Checks inside a planned maintenance window now.", registry=registry
        )

    async def start(self, lead: bool = True) -> None:
        """Maintenance windows apply everywhere; incidents and pages only where this daemon leads (HA)."""
        self._stored_windows = await self.store.maintenance_windows()
        self.maintenance.start()
        if lead:
            await self.lead()

    async def lead(self) -> None:
        """Take over the open incidents and unsent pages from the store and act on them."""
        self.incidents.open.clear()
        await self.incidents.start()
        await self.outbox.start()
        await self.handover.start()

    async def follow(self) -> None:
        await self.handover.stop()
        await self.incidents.stop()
        await self.outbox.stop()
        self.incidents.open.clear()

    async def stop(self) -> None:
        self.maintenance.stop()
        await self.follow()
        for notifier in self.notifiers.values():
            await notifier.close()

    def on_outcome(self, outcome: Outcome) -> None:
        self.incidents.on_outcome(outcome)

    async def reload(self, inventory: Inventory) -> None:
        """New tokens, notifiers and config windows; incidents and the outbox carry on."""
        self.tokens = Tokens(inventory.response.auth)
        self.guard.configure()
        old, self.notifiers = self.notifiers, create_notifiers(inventory.response.notifiers)
        for notifier in old.values():
            await notifier.close()
        self.maintenance.reconcile()

    async def maintenance_changed(self) -> None:
        self._stored_windows = await self.store.maintenance_windows()
        self.maintenance.reconcile()

    def planned_windows(self) -> list[MaintenanceWindow]:
        """Planned maintenance: the config's windows and those made through the API or CLI."""
        loaded = self.clock.now()
        return [from_config(m, loaded) for m in self.engine.inventory.response.maintenance] + self._stored_windows

    def _windows(self) -> list[MaintenanceWindow]:
        return self.planned_windows() + [w for source in self.extra_windows for w in source()]

    def _apply_maintenance(self, covered: set[str], names: dict[str, str]) -> None:
        engine = self.engine
        if names != engine.maintenance:
            log.info("maintenance_changed", checks=len(names), windows=sorted(set(names.values())))
        self._dispatch(engine.set_maintenance(names, self.clock.now()))
        self._maintenance_gauge.set(len(covered))

    def update_gauges(self) -> None:
        self._open_gauge.clear()
        self._level_gauge.clear()
        for incident in self.incidents.open.values():
            self._open_gauge.labels(incident.severity, incident.status).inc()
            self._level_gauge.labels(str(incident.level)).inc()
