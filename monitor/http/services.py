"""What the HTTP handlers work with: the collaborators they need, named and typed, handed to `build_app` as
one frozen `HttpServices` (the daemon builds it: `Daemon.http_services()`) and kept in the aiohttp app
under typed `web.AppKey`s, so a handler sees exactly these and nothing else of the daemon.

Things the daemon replaces or flips at run time (the inventory on reload, readiness, HA leadership) are
accessors, read on each request; the rest are the long-lived objects themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.access.auth import Guard
from monitor.availability.versions import ReportDesk
from monitor.core.engine import Engine
from monitor.core.inventory import Inventory
from monitor.http.cache import ReadShield
from monitor.http.events import EventHub
from monitor.http.listener import ConnectionGate
from monitor.incidents.acting_metrics import ActingMetrics
from monitor.incidents.manager import IncidentManager
from monitor.metrics.exposition import StateCollector
from monitor.security.desk import SecurityDesk
from monitor.status.notices import NoticeDesk
from monitor.status.page import StatusView
from monitor.store.base import Store


@dataclass(frozen=True, slots=True)
class HttpServices:
    engine: Engine  # current state of every check and service (never replaced; its inventory is)
    inventory: Callable[[], Inventory]  # the inventory now (a reload replaces it)
    store: Store
    guard: Guard  # who the caller is, what they may do, the audit log
    incidents: IncidentManager
    security: SecurityDesk  # the disconnect playbook
    notices: NoticeDesk
    reports: ReportDesk  # the monthly report's versions: draft, review, approval, distribution
    status_view: StatusView  # the public status page's figures
    events: EventHub  # live updates for the console; its version drops cached reads
    gate: ConnectionGate  # the listeners' caps; counts the reads answered 429
    registry: CollectorRegistry  # /metrics: the registered collectors ...
    state_collector: StateCollector  # ... and the fast path over the current state
    leader: Callable[[], bool]  # an HA standby takes no actions (app.standby_middleware)
    ready: Callable[[], bool]  # /readyz
    reload: Callable[[bool], Awaitable[tuple[bool, list[str]]]]  # POST /-/reload (allow_empty) -> (ok, errors)
    maintenance_changed: Callable[[], Awaitable[None]]  # a window was created or cancelled through the API
    extra_routes: tuple[Callable[[web.Application], None], ...] = ()  # e.g. the demo's /demo/faults
    acting: ActingMetrics | None = None  # counts the action links' uses and refusals (/act/<token>)


SERVICES = web.AppKey("services", HttpServices)
# One shield per application: the main listener and status_page.listen each cache and rate-limit their own reads
SHIELD = web.AppKey("shield", ReadShield)
