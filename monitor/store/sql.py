"""The SQL store both backends share: one writer thread, batched transactions, the state intervals, and the
queries, composed.

The event loop never waits for the database: every write goes through one queue to a single writer
thread. State transitions and heartbeats are fire-and-forget and applied in batches (one transaction per
batch); incident, outbox, maintenance and audit writes are awaited and each runs in a transaction of its
own. A busy or locked database (or a server restarting) delays writes and loses none. Reads use a second
connection.

The queries live in query classes, one per concern (sql_incidents, sql_admin, sql_reports, sql_security,
sql_notices), each built on the store as its `Executor` (read, write, dialect) and reachable as an attribute
(`store.incidents`, `store.admin`, ...). Why composition plus delegation rather than mixins or callers using
`store.incidents.*`: a query class depends only on dialect.py (no import back into the store, typed
without Any), can be read and tested alone, and the `Store` protocol (base.py) stays the one surface the
rest of the daemon sees; the one-line delegations below are that surface, in one place.

What differs between SQLite and PostgreSQL is in the subclasses (sqlite.py, postgres.py: connecting,
migrating, recovering after a crash, HA) and in `Dialect` (dialect.py); the SQL here is written once.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from operator import itemgetter
from typing import Any, Generic, TypeVar

import structlog

from monitor import __version__
from monitor.availability.capacity import MonthFigures, Sample
from monitor.core.engine import Transition
from monitor.store.base import LeaseStore
from monitor.store.dialect import Connection, Dialect
from monitor.store.records import (
    AuditEntry,
    IncidentEvent,
    IncidentRecord,
    Interval,
    LinkUse,
    MaintenanceWindow,
    Notice,
    OutboxItem,
    SecurityIncident,
)
from monitor.store.sql_admin import AdminQueries
from monitor.store.sql_capacity import CapacityQueries
from monitor.store.sql_incidents import IncidentQueries
from monitor.store.sql_links import LinkQueries
from monitor.store.sql_notices import NoticeQueries
from monitor.store.sql_oncall import OnCallQueries
from monitor.store.sql_report_versions import ReportVersion, ReportVersionQueries
from monitor.store.sql_reports import Correction, MonthRollup, ReportQueries
from monitor.store.sql_security import SecurityQueries

log = structlog.get_logger()
BATCH = 2000
OUTAGE_STATES = ("down", "unreachable")  # an interval in one of these may be resumed across a restart
RESUME_WITHIN = 900.0  # seconds: a longer gap in monitoring stays a gap, even between two outages
T = TypeVar("T")
C = TypeVar("C", bound=Connection)
_INTERVAL = 'subject, subject_id, state, start, "end", reason, root_cause'


@dataclass(slots=True)
class _Call(Generic[C]):
    job: Callable[[C], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class SQLStore(Generic[C]):
    RESUMES = True  # a store of one daemon: its outages resume across its restarts (see `resumable`)
    RETRYABLE: tuple[type[Exception], ...] = ()  # the backend's "busy, locked, disk full, gone": try again
    MIGRATIONS: tuple[str, ...] = ()  # the backend's schema, in versions
    CHECK_SECONDS = 2.0  # how often the writer calls `check_file` (also when idle)

    def __init__(self, dialect: Dialect, where: str) -> None:
        self.dialect = dialect
        self.where = where  # the database, as shown in messages
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._writer: C | None = None
        self._reader: C | None = None
        self._read_lock = threading.Lock()
        self.run_id = 0
        self.write_errors = 0
        self.file_problem: str | None = None  # why the store's file is not the open database (SQLite): not ready
        self.files_lost: dict[str, int] = {}  # "deleted", "replaced", "wal_deleted", ...: times detected
        self.owns_intervals = True  # False on an HA standby: the leader alone writes the state intervals
        self.lease: LeaseStore | None = None  # set by a store several daemons share (PostgreSQL)
        # the outages open when the previous run ended, by (subject, id): (interval row id, state, start, reason);
        # the first transition of each in this run either reopens it (same state) or drops it
        self.resumable: dict[tuple[str, str], tuple[int, str, float, str | None]] = {}
        self.previous_run: tuple[float, bool] | None = None  # (when the previous run ended, unclean?)
        self._unclean = False
        self._checked = 0.0  # monotonic time of the last `check_file`
        self.incidents = IncidentQueries(self)
        self.admin = AdminQueries(self)
        self.reports = ReportQueries(self)
        self.report_versions_q = ReportVersionQueries(self)
        self.security = SecurityQueries(self)
        self.notices = NoticeQueries(self)
        self.capacity = CapacityQueries(self)
        self.oncall = OnCallQueries(self)  # on-call overrides, swaps and handovers
        self.links = LinkQueries(self)
        # the write path's statements, built once (a transition is three of them)
        p, greatest = dialect.param, dialect.greatest
        self._close_all = f'UPDATE state_intervals SET "end" = {greatest}(start, {p}) WHERE "end" IS NULL'
        self._close_one = (
            f'UPDATE state_intervals SET "end" = {greatest}(start, {p}) '
            f'WHERE subject = {p} AND subject_id = {p} AND "end" IS NULL'
        )
        self._close_id = f'UPDATE state_intervals SET "end" = {greatest}(start, {p}) WHERE id = {p}'
        self._reopen_id = f'UPDATE state_intervals SET "end" = NULL WHERE id = {p}'
        self._open = (
            "INSERT INTO state_intervals (subject, subject_id, state, start, reason, root_cause) "
            f"VALUES ({dialect.marks(6)})"
        )
        self._heartbeat = f"UPDATE daemon_runs SET last_seen = {p} WHERE id = {p}"
        self._stop = f"UPDATE daemon_runs SET last_seen = {p}, stopped = {p} WHERE id = {p}"

    # --- what each backend provides ----------------------------------------------------------

    def _connect(self) -> C:
        raise NotImplementedError

    def _migrate(self, conn: C) -> None:
        raise NotImplementedError

    def _schema_version(self, conn: C) -> int:
        raise NotImplementedError

    def check_file(self) -> str | None:
        """On the writer thread: the store's file is still the open database? (SQLite; nothing to check here)."""
        return self.file_problem

    def _remember_files(self) -> None:
        """Note what the store's file is, for `check_file` (SQLite)."""

    def _recover(self) -> None:
        """A store of one daemon: a run that never stopped died; its open intervals end at its last heartbeat."""
        assert self._writer is not None
        row = self._writer.execute(
            "SELECT id, last_seen FROM daemon_runs WHERE stopped IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            run_id, last_seen = row
            closed = self._writer.execute(self._close_all, (last_seen,)).rowcount
            self._writer.execute("UPDATE daemon_runs SET stopped = last_seen WHERE stopped IS NULL")
            log.warning("store_recovered_unclean_stop", run=run_id, last_seen=last_seen, intervals_closed=closed)
            self._unclean = True

    # --- lifecycle -------------------------------------------------------------------------

    def open(self, now: float) -> None:
        """Migrate, recover from an unclean stop, start this run, start the writer thread."""
        self._writer = self._connect()
        self._migrate(self._writer)
        self._recover()
        if self.RESUMES:
            self._find_resumable(now)
        row = self._writer.execute(
            f"INSERT INTO daemon_runs (started, last_seen, version) VALUES ({self.dialect.marks(3)}) RETURNING id",
            (now, now, __version__),
        ).fetchone()
        self.run_id = int(row[0])
        self._reader = self._connect()
        self._remember_files()
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._thread.start()

    def open_readonly(self) -> None:
        """Reads only, beside a running daemon (reports from the command line): no migration, no
        recovery, no run of its own. Writes fail."""
        self._reader = self._connect()
        version = self._schema_version(self._reader)
        if version != len(self.MIGRATIONS):
            raise RuntimeError(
                f"the store at {self.where} has schema {version}, this program needs {len(self.MIGRATIONS)}"
            )

    def _find_resumable(self, now: float) -> None:
        """The outages that were open when the previous run ended (cleanly or not): closed at its end."""
        assert self._writer is not None
        last = self._writer.execute("SELECT stopped FROM daemon_runs ORDER BY id DESC LIMIT 1").fetchone()
        if last is None or last[0] is None:
            return
        ended = float(last[0])
        self.previous_run = (ended, self._unclean)
        if now - ended > RESUME_WITHIN:
            return
        p = self.dialect.param
        rows = self._writer.execute(
            "SELECT id, subject, subject_id, state, start, reason FROM state_intervals "
            f'WHERE "end" >= {p} AND state IN ({self.dialect.marks(len(OUTAGE_STATES))})',
            (ended, *OUTAGE_STATES),
        ).fetchall()
        self.resumable = {(r[1], r[2]): (r[0], r[3], r[4], r[5]) for r in rows}

    def resumable_checks(self) -> dict[str, tuple[str, float, str | None]]:
        """check id -> (state, since, reason) of the checks DOWN or UNREACHABLE when the previous run ended."""
        return {sid: (state, start, reason) for (kind, sid), (_, state, start, reason) in self.resumable.items()
                if kind == "check"}  # fmt: skip

    async def close(self, now: float) -> None:
        """Close open intervals at `now` (a clean stop), drain the queue, stop the writer."""
        if self._thread is None:
            if self._reader is not None:  # opened read-only
                self._reader.close()
                self._reader = None
            return
        self._queue.put(("stop", now))
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()

    # --- writes ----------------------------------------------------------------------------

    def record(self, transitions: Iterable[Transition]) -> None:
        """Queue state transitions (fire and forget; applied in order, in batches)."""
        for t in transitions:
            self._queue.put(("transition", t))

    def heartbeat(self, now: float) -> None:
        self._queue.put(("heartbeat", now))

    async def write(self, job: Callable[[C], T]) -> T:
        """Run `job(conn)` in a transaction of its own on the writer thread; its result, or its error."""
        if self._thread is None:
            raise RuntimeError("the store is not open for writing")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(job, future, loop))
        return await future

    async def read(self, job: Callable[[C], T]) -> T:
        """Run `job(conn)` on the reader connection, off the event loop."""

        def run() -> T:
            assert self._reader is not None
            with self._read_lock:
                return job(self._reader)

        return await asyncio.to_thread(run)

    @property
    def backlog(self) -> int:
        """Writes queued for the writer thread (grows while the disk is slow, locked or full)."""
        return self._queue.qsize()

    async def flush(self) -> None:
        """Wait until everything queued so far is written."""
        await asyncio.to_thread(self._queue.join)

    def _write_loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.CHECK_SECONDS)
            except queue.Empty:  # idle: a good moment to look at the file
                self.check_file()
                continue
            if time.monotonic() - self._checked >= self.CHECK_SECONDS:
                self._checked = time.monotonic()
                self.check_file()
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            plain: list[Any] = []  # transitions and heartbeats: one transaction for a run of them
            for item in batch:
                if isinstance(item, _Call) or item is _STOP:
                    self._with_retry(partial(self._apply, plain))
                    plain = []
                    if isinstance(item, _Call):
                        self._run_call(item)
                else:
                    plain.append(item)
            self._with_retry(partial(self._apply, plain))
            for _ in batch:
                self._queue.task_done()
            if _STOP in batch:
                return

    def _run_call(self, call: _Call[C]) -> None:
        def transaction() -> Any:
            conn = self._writer
            assert conn is not None
            conn.execute(self.dialect.begin)
            try:
                result = call.job(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            result = self._with_retry(transaction)
        except Exception as exc:  # the caller gets the error (a constraint, a bug), the writer lives on
            call.loop.call_soon_threadsafe(_settle, call.future, None, exc)
        else:
            call.loop.call_soon_threadsafe(_settle, call.future, result, None)

    def _with_retry(self, action: Callable[[], T]) -> T:
        """Busy, locked or full disk: wait and try again, keeping the work. Other errors propagate."""
        delay = 0.05
        while True:
            try:
                return action()
            except self.RETRYABLE as exc:
                self.write_errors += 1
                log.error("store_write_failed", error=str(exc), retry_in=delay)
                self.check_file()  # e.g. "readonly database" once SQLite itself notices the file moved
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _apply(self, items: list[Any]) -> None:
        if not items:
            return
        conn = self._writer
        assert conn is not None
        conn.execute(self.dialect.begin)
        try:
            for kind, payload in items:
                if kind == "transition":
                    self._apply_transition(conn, payload)
                elif kind == "heartbeat":
                    conn.execute(self._heartbeat, (payload, self.run_id))
                elif kind == "stop":
                    if self.owns_intervals:
                        conn.execute(self._close_all, (payload,))
                    conn.execute(self._stop, (payload, payload, self.run_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _apply_transition(self, conn: C, t: Transition) -> None:
        resumed = self.resumable.pop((t.kind, t.id), None)
        if resumed is not None and t.old.value == "unknown" and t.new.value in OUTAGE_STATES:
            # the same outage as before the restart: it goes on, the gap in monitoring included (DOWN and
            # UNREACHABLE are both downtime: a service seen UNREACHABLE first, DOWN next, is still one outage)
            if t.new.value == resumed[1]:
                conn.execute(self._reopen_id, (resumed[0],))
                return
            conn.execute(self._close_id, (t.at, resumed[0]))
        conn.execute(self._close_one, (t.at, t.kind, t.id))
        conn.execute(self._open, (t.kind, t.id, t.new.value, t.at, t.reason, t.root_cause))

    # --- state intervals and runs ----------------------------------------------------------------

    def intervals(self, subject: str, subject_id: str, start: float, end: float) -> list[Interval]:
        """Intervals of one subject overlapping [start, end) (open ones have end None)."""
        assert self._reader is not None
        p = self.dialect.param
        with self._read_lock:
            rows = self._reader.execute(
                f"SELECT {_INTERVAL} FROM state_intervals "
                f'WHERE subject = {p} AND subject_id = {p} AND start < {p} AND ("end" IS NULL OR "end" > {p}) '
                "ORDER BY start",
                (subject, subject_id, end, start),
            ).fetchall()
        return [Interval(*row) for row in rows]

    async def intervals_since(self, subject: str, since: float) -> dict[str, list[Interval]]:
        """Every interval of a subject kind that was still going at `since`, by subject id, in order."""
        p = self.dialect.param
        sql = (
            f'SELECT {_INTERVAL} FROM state_intervals WHERE subject = {p} AND ("end" IS NULL OR "end" > {p}) '
            "ORDER BY subject_id, start"
        )
        rows = await self.read(lambda c: c.execute(sql, (subject, since)).fetchall())
        found: dict[str, list[Interval]] = {}
        for row in rows:
            found.setdefault(row[1], []).append(Interval(*row))
        return found

    async def spans_between(self, subject: str, start: float, end: float) -> dict[str, list[tuple[Any, ...]]]:
        """(state, start, end, root_cause) of every interval of a subject kind overlapping [start, end), by
        subject id, in order: plain tuples read from the covering index (a month of 5,000 services can be a
        million rows)."""
        p = self.dialect.param
        sql = (
            'SELECT state, start, "end", root_cause, subject_id FROM state_intervals '
            f'WHERE subject = {p} AND start < {p} AND ("end" IS NULL OR "end" > {p}) ORDER BY subject_id, start'
        )

        def job(conn: C) -> dict[str, list[tuple[Any, ...]]]:
            rows = conn.execute(sql, (subject, end, start)).fetchall()
            # the rows themselves, grouped: (state, start, end, root_cause, subject_id) serve as spans as they are
            return {subject_id: list(group) for subject_id, group in groupby(rows, key=itemgetter(4))}

        return await self.read(job)

    def runs(self) -> list[tuple[int, float, float, float | None]]:
        assert self._reader is not None
        with self._read_lock:
            rows = self._reader.execute("SELECT id, started, last_seen, stopped FROM daemon_runs ORDER BY id")
            return [tuple(row) for row in rows.fetchall()]

    # --- the Store protocol's queries, by concern (see the module docstring) ---------------------------

    async def create_incident(self, incident: IncidentRecord, event: IncidentEvent | None = None) -> int:
        return await self.incidents.create_incident(incident, event)

    async def save_incident(self, incident: IncidentRecord, *events: IncidentEvent) -> None:
        await self.incidents.save_incident(incident, *events)

    async def save_incidents(self, batch: list[tuple[IncidentRecord, list[IncidentEvent]]]) -> None:
        await self.incidents.save_incidents(batch)

    async def add_events(self, incident_id: int, *events: IncidentEvent) -> None:
        await self.incidents.add_events(incident_id, *events)

    async def open_incidents(self) -> list[IncidentRecord]:
        return await self.incidents.open_incidents()

    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        return await self.incidents.get_incident(incident_id)

    async def list_incidents(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[IncidentRecord], int]:
        return await self.incidents.list_incidents(status, limit, offset)

    async def incident_events(self, incident_id: int) -> list[IncidentEvent]:
        return await self.incidents.incident_events(incident_id)

    async def enqueue(self, items: list[OutboxItem]) -> int:
        return await self.incidents.enqueue(items)

    async def due_notifications(self, now: float, limit: int = 100) -> list[OutboxItem]:
        return await self.incidents.due_notifications(now, limit)

    async def next_notification_due(self) -> float | None:
        return await self.incidents.next_notification_due()

    async def mark_sent(self, item_id: int, at: float) -> None:
        await self.incidents.mark_sent(item_id, at)

    async def mark_failed(self, item_id: int, error: str, retry_at: float | None) -> None:
        await self.incidents.mark_failed(item_id, error, retry_at)

    async def cancel_pending(self, incident_id: int, kinds: tuple[str, ...] = ("firing", "repeat")) -> int:
        return await self.incidents.cancel_pending(incident_id, kinds)

    async def notifications(self, incident_id: int | None = None) -> list[OutboxItem]:
        return await self.incidents.notifications(incident_id)

    async def firing_alerts(self) -> list[OutboxItem]:
        return await self.incidents.firing_alerts()

    async def outbox_counts(self) -> dict[str, int]:
        return await self.incidents.outbox_counts()

    async def add_maintenance(self, window: MaintenanceWindow) -> int:
        return await self.admin.add_maintenance(window)

    async def cancel_maintenance(self, window_id: int, by: str, at: float) -> bool:
        return await self.admin.cancel_maintenance(window_id, by, at)

    async def maintenance_windows(self, include_cancelled: bool = False) -> list[MaintenanceWindow]:
        return await self.admin.maintenance_windows(include_cancelled)

    async def audit(self, entry: AuditEntry) -> AuditEntry:
        return await self.admin.audit(entry)

    async def audit_log(self, limit: int = 100, offset: int = 0) -> tuple[list[AuditEntry], int]:
        return await self.admin.audit_log(limit, offset)

    async def verify_audit_chain(self) -> tuple[bool, int | None]:
        return await self.admin.verify_audit_chain()

    async def save_security_incident(self, incident: SecurityIncident) -> int:
        return await self.security.save_security_incident(incident)

    async def open_security_incidents(self) -> list[SecurityIncident]:
        return await self.security.open_security_incidents()

    async def get_security_incident(self, incident_id: int) -> SecurityIncident | None:
        return await self.security.get_security_incident(incident_id)

    async def list_security_incidents(
        self, open_only: bool = False, limit: int = 100, offset: int = 0
    ) -> tuple[list[SecurityIncident], int]:
        return await self.security.list_security_incidents(open_only, limit, offset)

    async def traffic_baselines(self) -> dict[tuple[str, str, int], tuple[float, int]]:
        return await self.security.traffic_baselines()

    async def save_traffic_baselines(self, buckets: dict[tuple[str, str, int], tuple[float, int]]) -> None:
        await self.security.save_traffic_baselines(buckets)

    async def flow_peers(self) -> dict[tuple[str, str], tuple[float, float]]:
        return await self.security.flow_peers()

    async def save_flow_peers(self, peers: dict[tuple[str, str], tuple[float, float]]) -> None:
        await self.security.save_flow_peers(peers)

    async def save_notice(self, notice: Notice) -> int:
        return await self.notices.save_notice(notice)

    async def get_notice(self, notice_id: int) -> Notice | None:
        return await self.notices.get_notice(notice_id)

    async def list_notices(
        self, statuses: tuple[str, ...] = ("draft", "published", "closed"), limit: int = 100, offset: int = 0
    ) -> tuple[list[Notice], int]:
        return await self.notices.list_notices(statuses, limit, offset)

    async def notices_for_incidents(self, incident_ids: list[int]) -> dict[int, list[Notice]]:
        return await self.notices.notices_for_incidents(incident_ids)

    async def use_action_link(self, use: LinkUse) -> LinkUse | None:
        return await self.links.use_action_link(use)

    async def action_link_use(self, digest: str) -> LinkUse | None:
        return await self.links.action_link_use(digest)

    async def add_correction(self, correction: Correction) -> int:
        return await self.reports.add_correction(correction)

    async def corrections(self, start: float, end: float) -> list[Correction]:
        return await self.reports.corrections(start, end)

    async def save_rollups(self, rollups: list[MonthRollup]) -> None:
        await self.reports.save_rollups(rollups)

    async def rollups(self, months: list[str]) -> list[MonthRollup]:
        return await self.reports.rollups(months)

    async def rolled_up_months(self) -> list[str]:
        return await self.reports.rolled_up_months()

    async def incidents_between(self, start: float, end: float) -> list[IncidentRecord]:
        return await self.reports.incidents_between(start, end)

    async def first_notifications(self, incident_ids: list[int]) -> dict[int, float]:
        return await self.reports.first_notifications(incident_ids)

    async def prune_intervals(self, before: float) -> int:
        return await self.reports.prune_intervals(before)

    async def save_capacity_samples(self, samples: list[Sample]) -> None:
        await self.capacity.save_capacity_samples(samples)

    async def capacity_samples(self, start: float, end: float, circuit: str | None = None) -> list[Sample]:
        return await self.capacity.capacity_samples(start, end, circuit)

    async def capacity_circuits(self, start: float, end: float) -> list[str]:
        return await self.capacity.capacity_circuits(start, end)

    async def save_capacity_months(self, months: list[MonthFigures]) -> None:
        await self.capacity.save_capacity_months(months)

    async def capacity_months(self, months: list[str]) -> list[MonthFigures]:
        return await self.capacity.capacity_months(months)

    async def prune_capacity_samples(self, before: float) -> int:
        return await self.capacity.prune_capacity_samples(before)

    async def add_report_draft(self, draft: ReportVersion) -> ReportVersion:
        return await self.report_versions_q.add_report_draft(draft)

    async def report_version(self, month: str, version: int, pdfs: bool = False) -> ReportVersion | None:
        return await self.report_versions_q.report_version(month, version, pdfs)

    async def report_versions(self, month: str | None = None) -> list[ReportVersion]:
        return await self.report_versions_q.report_versions(month)

    async def review_report(self, month: str, version: int, by: str, at: float, comment: str) -> bool:
        return await self.report_versions_q.review_report(month, version, by, at, comment)

    async def approve_report(
        self, month: str, version: int, by: str, at: float, comment: str, pdf_ja: bytes, pdf_en: bytes
    ) -> bool:
        return await self.report_versions_q.approve_report(month, version, by, at, comment, pdf_ja, pdf_en)

    async def report_distributed(self, month: str, version: int, at: float, items: int) -> None:
        await self.report_versions_q.report_distributed(month, version, at, items)

    async def undistributed_reports(self) -> list[tuple[str, int]]:
        return await self.report_versions_q.undistributed_reports()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
