"""The store contract: one scenario suite, run on every backend (SQLite always; PostgreSQL where it is
installed: tests/pg.py starts a real server). A new backend adds itself to BACKENDS and must pass unchanged.
The SQL is written once (monitor/store/sql*.py) with the few dialect words put in explicitly, so these
scenarios cover each statement on each backend, the ones whose words differ (GREATEST, the `end` column,
RETURNING, parameter marks in IN lists and LIMIT) included."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from monitor.availability.capacity import MonthFigures, Sample
from monitor.core.engine import Transition
from monitor.core.state import State
from monitor.store.base import Store
from monitor.store.postgres import PostgresStore
from monitor.store.records import (
    AuditEntry,
    IncidentEvent,
    IncidentRecord,
    MaintenanceWindow,
    Notice,
    OutboxItem,
    SecurityIncident,
)
from monitor.store.sql_report_versions import ReportVersion
from monitor.store.sql_reports import Correction, MonthRollup
from monitor.store.sqlite import SQLiteStore
from tests import pg

BACKENDS: dict[str, Callable[[Path], Store]] = {"sqlite": lambda tmp: SQLiteStore(tmp / "contract.db")}
if pg.available():
    BACKENDS["postgresql"] = lambda _tmp: PostgresStore(pg.fresh_database())


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = BACKENDS[request.param](tmp_path)
    made.open(now=100.0)
    yield made
    await made.close(now=999.0)


def incident(key: str = "target:edge", **kw: object) -> IncidentRecord:
    return IncidentRecord(key=key, severity="major", title="edge 障害", title_en="edge down", opened_at=100.0, **kw)  # type: ignore[arg-type]


def item(dedup: str, incident_id: int, kind: str = "firing", not_before: float = 100.0) -> OutboxItem:
    return OutboxItem(dedup, incident_id, 1, "am", "am", kind, {"alert": {"labels": {"a": "b"}}}, not_before, 100.0)


async def test_incident_round_trip_with_timeline(store: Store) -> None:
    """An incident is stored with all its fields (JSON ones included) and its timeline in order."""
    made = incident(labels={"prefecture": "13"}, affected={"children": ["c1"], "services": {"link": "down"}})
    incident_id = await store.create_incident(
        made, IncidentEvent(0, 100.0, "detected", None, {"checks": {"edge/ping": "loss"}})
    )
    made.level, made.status, made.acked_by = 1, "acknowledged", "山田"
    await store.save_incident(made, IncidentEvent(incident_id, 110.0, "acknowledged", "山田", {"comment": "確認"}))
    loaded = await store.get_incident(incident_id)
    assert loaded == made
    events = await store.incident_events(incident_id)
    assert [(e.kind, e.actor, e.detail) for e in events] == [
        ("detected", None, {"checks": {"edge/ping": "loss"}}),
        ("acknowledged", "山田", {"comment": "確認"}),
    ]
    assert [i.id for i in await store.open_incidents()] == [incident_id]


async def test_one_open_incident_per_key(store: Store) -> None:
    """A second open incident with the same key is refused; after resolving, a new one may open."""
    first = incident()
    await store.create_incident(first)
    with pytest.raises(sqlite3.IntegrityError):
        await store.create_incident(incident())
    first.status = "resolved"
    await store.save_incident(first)
    await store.create_incident(incident())
    listed, total = await store.list_incidents()
    assert total == 2 and [i.status for i in listed] == ["open", "resolved"]
    assert (await store.list_incidents("resolved"))[1] == 1


async def test_outbox_dedup_due_and_delivery_states(store: Store) -> None:
    """Enqueuing the same dedup key twice adds it once; due items come in order; sent/failed/cancelled stick."""
    incident_id = await store.create_incident(incident())
    assert await store.enqueue([item("k1", incident_id), item("k2", incident_id, not_before=200.0)]) == 2
    assert await store.enqueue([item("k1", incident_id)]) == 0
    assert [i.dedup_key for i in await store.due_notifications(150.0)] == ["k1"]
    assert await store.next_notification_due() == 100.0
    first = (await store.due_notifications(150.0))[0]
    await store.mark_failed(first.id, "connection refused", retry_at=300.0)
    assert [i.dedup_key for i in await store.due_notifications(250.0)] == ["k2"]  # k1 waits for its retry
    retried = next(i for i in await store.notifications(incident_id) if i.dedup_key == "k1")
    assert (retried.attempts, retried.last_error, retried.not_before) == (1, "connection refused", 300.0)
    await store.mark_sent(first.id, 301.0)
    await store.mark_sent(first.id, 302.0)  # a second mark does nothing: it is no longer pending
    sent = next(i for i in await store.notifications(incident_id) if i.dedup_key == "k1")
    assert (sent.status, sent.sent_at, sent.attempts) == ("sent", 301.0, 2)
    assert await store.cancel_pending(incident_id) == 1
    assert await store.outbox_counts() == {"sent": 1, "cancelled": 1}
    await store.enqueue([item("k3", incident_id)])
    gone = (await store.due_notifications(1e9))[0]
    await store.mark_failed(gone.id, "gave up", retry_at=None)
    assert (await store.outbox_counts())["failed"] == 1


async def test_firing_alerts_of_open_incidents_only(store: Store) -> None:
    """Re-sendable alerts are the delivered firing ones of incidents still open."""
    open_id = await store.create_incident(incident("target:a"))
    closed = incident("target:b")
    closed_id = await store.create_incident(closed)
    await store.enqueue([item("a1", open_id), item("b1", closed_id), item("a2", open_id, kind="resolved")])
    for queued in await store.due_notifications(1e9):
        await store.mark_sent(queued.id, 100.0)
    closed.status = "resolved"
    await store.save_incident(closed)
    assert [i.dedup_key for i in await store.firing_alerts()] == ["a1"]


async def test_firing_alerts_latest_per_level(store: Store) -> None:
    """A severity update supersedes the level's first alert: only the latest sent one is re-sent."""
    incident_id = await store.create_incident(incident("target:link"))
    await store.enqueue([item("f1", incident_id), item("u1", incident_id, kind="update")])
    for queued in await store.due_notifications(1e9):
        await store.mark_sent(queued.id, 100.0)
    await store.enqueue([item("u2", incident_id, kind="update")])  # not sent yet: the sent one stays
    assert [i.dedup_key for i in await store.firing_alerts()] == ["u1"]


async def test_maintenance_windows(store: Store) -> None:
    """Windows are stored with their scope; cancelling hides them (once) unless asked for."""
    window = MaintenanceWindow(
        "swap", "機器交換", "yamada", 100.0, {"targets": ["edge"], "labels": {}}, cron="0 2 * * 0", duration=3600.0
    )
    window_id = await store.add_maintenance(window)
    assert await store.maintenance_windows() == [window]
    assert await store.cancel_maintenance(window_id, "suzuki", 150.0) is True
    assert await store.cancel_maintenance(window_id, "suzuki", 160.0) is False
    assert await store.maintenance_windows() == []
    [cancelled] = await store.maintenance_windows(include_cancelled=True)
    assert (cancelled.cancelled_by, cancelled.cancelled_at) == ("suzuki", 150.0)


async def test_audit_log_is_chained_and_append_only(store: Store) -> None:
    """Audit entries chain by hash from a genesis value; the chain verifies; entries cannot be changed."""
    first = await store.audit(
        AuditEntry(100.0, "yamada", "incident.ack", "ok", "operator", "incident:1", "127.0.0.1", {"comment": "確認"})
    )
    second = await store.audit(AuditEntry(101.0, "anonymous", "incident.ack", "denied", "viewer", "incident:1"))
    assert first.prev_hash == "0" * 64 and second.prev_hash == first.hash and first.hash != second.hash
    assert await store.verify_audit_chain() == (True, None)
    entries, total = await store.audit_log()
    assert total == 2 and [e.id for e in entries] == [second.id, first.id]


async def test_state_intervals_from_transitions(store: Store) -> None:
    """Transitions recorded become intervals once flushed."""
    store.record(
        [
            Transition("service", "juki-net", State.UNKNOWN, State.UP, 100.0),
            Transition("service", "juki-net", State.UP, State.DOWN, 150.0),
        ]
    )
    await store.flush()
    found = await store.intervals_since("service", 0.0)
    assert [(i.state, i.start, i.end) for i in found["juki-net"]] == [("up", 100.0, 150.0), ("down", 150.0, None)]
    assert list(await store.intervals_since("service", 160.0)) == ["juki-net"]
    assert [span[:3] for span in (await store.spans_between("service", 120.0, 140.0))["juki-net"]] == [
        ("up", 100.0, 150.0)
    ]


async def test_a_transition_back_in_time_ends_the_open_interval_where_it_began(store: Store) -> None:
    """An interval never ends before it starts (the two-argument maximum: MAX on SQLite, GREATEST on PostgreSQL)."""
    store.record([Transition("check", "a/ping", State.UNKNOWN, State.UP, 200.0)])
    store.record([Transition("check", "a/ping", State.UP, State.DOWN, 150.0)])  # a clock stepped back
    await store.flush()
    found = (await store.intervals_since("check", 0.0))["a/ping"]
    assert [(i.state, i.start, i.end) for i in found] == [("down", 150.0, None), ("up", 200.0, 200.0)]


async def test_report_queries(store: Store) -> None:
    """Corrections, monthly roll-ups (upserted), incidents of a period with their first page, pruning."""
    first = await store.add_correction(Correction("juki-net", 100.0, 200.0, "計画停止", "山田", 300.0))
    assert first > 0
    assert [c.reason for c in await store.corrections(150.0, 160.0)] == ["計画停止"]
    assert await store.corrections(200.0, 300.0) == []  # [start, end) does not overlap a later period
    rollup = MonthRollup("juki-net", "2026-11", 100.0, 0.0, 0.0, 5.0, 1, 5.0, 99.9)
    await store.save_rollups([rollup])
    await store.save_rollups([MonthRollup("juki-net", "2026-11", 100.0, 0.0, 0.0, 7.0, 2, 6.0, 99.9)])
    assert [(r.downtime_seconds, r.outages) for r in await store.rollups(["2026-11", "2026-10"])] == [(7.0, 2)]
    assert await store.rolled_up_months() == ["2026-11"]
    incident_id = await store.create_incident(incident())
    await store.enqueue([item("p1", incident_id), item("p2", incident_id)])
    for queued in await store.due_notifications(1e9):
        await store.mark_sent(queued.id, 110.0 + queued.id)
    assert [i.id for i in await store.incidents_between(50.0, 150.0)] == [incident_id]
    assert await store.incidents_between(0.0, 50.0) == []
    sent = await store.first_notifications([incident_id])
    assert list(sent) == [incident_id] and sent[incident_id] == min(i.sent_at or 0 for i in await store.notifications())
    store.record([Transition("check", "a/ping", State.UNKNOWN, State.UP, 100.0)])
    store.record([Transition("check", "a/ping", State.UP, State.DOWN, 150.0)])
    await store.flush()
    assert await store.prune_intervals(160.0) == 1  # the ended one; the open one stays
    assert [i.state for i in (await store.intervals_since("check", 0.0))["a/ping"]] == ["down"]


async def test_pages_of_lists(store: Store) -> None:
    """LIMIT and OFFSET take parameters on every backend; totals count everything."""
    for n in range(5):
        await store.audit(AuditEntry(at=100.0 + n, actor="a", role="admin", action=f"act{n}", object=None,
                                     outcome="ok", source=None, detail={}))  # fmt: skip
    page, total = await store.audit_log(limit=2, offset=1)
    assert total == 5 and [e.action for e in page] == ["act3", "act2"]
    for n in range(3):
        await store.create_incident(incident(f"target:{n}"))
    listed, total = await store.list_incidents("open", limit=1, offset=2)
    assert total == 3 and [i.key for i in listed] == ["target:0"]


async def test_the_lease_is_offered_by_a_shared_store_only(store: Store) -> None:
    """SQLite serves one daemon: no lease. PostgreSQL is shared: one holder at a time, taken over once expired
    (with the previous holder's last renewal), handed over on release; a takeover closes open intervals."""
    if isinstance(store, SQLiteStore):
        assert store.lease is None
        return
    lease = store.lease
    assert lease is not None
    assert await lease.hold_lease("a:1#1", 100.0, 15.0) == (True, None)
    assert await lease.hold_lease("b:1#2", 110.0, 15.0) == (False, None)
    assert await lease.hold_lease("b:1#2", 120.0, 15.0) == (True, 100.0)
    await lease.release_lease("b:1#2")
    assert await lease.hold_lease("a:1#1", 121.0, 15.0) == (True, None)
    store.record([Transition("check", "a/ping", State.UNKNOWN, State.DOWN, 100.0)])
    await store.flush()
    await lease.close_open_intervals(130.0)
    assert [(i.start, i.end) for i in (await store.intervals_since("check", 0.0))["a/ping"]] == [(100.0, 130.0)]


async def test_security_incidents_one_open_per_connection(store: Store) -> None:
    """A security incident round-trips whole; a second open one for the same connection is refused;
    once closed, the connection may have a new one; listing can be limited to open ones."""
    made = SecurityIncident(connection="city-a", severity="critical", opened_at=100.0, source="ids", summary="C2",
                            evidence=[{"at": 100.0, "source": "ids"}], proposal={"method": "snmp_set", "if_index": 3})  # fmt: skip
    first = await store.save_security_incident(made)
    made.approvals.append({"step": "cut", "actor": "alice", "at": 101.0})
    made.phase = "cut"
    await store.save_security_incident(made)
    assert await store.get_security_incident(first) == made
    with pytest.raises(sqlite3.IntegrityError):
        await store.save_security_incident(SecurityIncident("city-a", "major", 102.0, "trap", "again"))
    made.phase, made.closed_at = "reconnected", 200.0
    await store.save_security_incident(made)
    second = await store.save_security_incident(SecurityIncident("city-a", "major", 300.0, "anomaly", "again"))
    assert [i.id for i in await store.open_security_incidents()] == [second]
    everything, total = await store.list_security_incidents()
    assert total == 2 and [i.id for i in everything] == [second, first]
    only_open, open_total = await store.list_security_incidents(open_only=True)
    assert open_total == 1 and only_open[0].id == second


async def test_traffic_baselines_upsert(store: Store) -> None:
    """Baselines are stored per (connection, metric, hour of week) and updated in place."""
    await store.save_traffic_baselines({("city-a", "in_bytes", 10): (1000.0, 5), ("city-a", "in_bytes", 11): (5.0, 1)})
    await store.save_traffic_baselines({("city-a", "in_bytes", 10): (1100.0, 6)})
    assert await store.traffic_baselines() == {
        ("city-a", "in_bytes", 10): (1100.0, 6),
        ("city-a", "in_bytes", 11): (5.0, 1),
    }


async def test_flow_peers_upsert(store: Store) -> None:
    """Learned flow peers are stored per (connection, peer); an update moves last-seen, never first-seen."""
    await store.save_flow_peers({("city-a", "10.200.0.5/32"): (100.0, 100.0), ("city-b", "10.200.0.5/32"): (5.0, 6.0)})
    await store.save_flow_peers({("city-a", "10.200.0.5/32"): (999.0, 4000.0)})
    assert await store.flow_peers() == {
        ("city-a", "10.200.0.5/32"): (100.0, 4000.0),
        ("city-b", "10.200.0.5/32"): (5.0, 6.0),
    }


async def test_notices_round_trip_and_by_incident(store: Store) -> None:
    """A notice round-trips whole; lists filter by status, newest first; notices are found by incident."""
    draft = Notice("occurred", "【障害発生】住基", "[Disruption] Juki", "本文", "body", 100.0, "system",
                   services=["juki"], incident_id=7)  # fmt: skip
    first = await store.save_notice(draft)
    draft.status, draft.published_at, draft.revision = "published", 110.0, 1
    await store.save_notice(draft)
    assert await store.get_notice(first) == draft
    planned = Notice("planned", "【計画停止】", "[Planned]", "本文", "body", 120.0, "yamada")
    second = await store.save_notice(planned)
    assert [n.id for n in (await store.list_notices())[0]] == [second, first]
    assert [n.id for n in (await store.list_notices(("published",)))[0]] == [first]
    assert await store.notices_for_incidents([7, 8]) == {7: [draft]}


def _columns(store: Store) -> dict[str, list[str]]:
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
        finally:
            conn.close()
    assert isinstance(store, PostgresStore)
    with psycopg.connect(store.dsn) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name != 'schema_version' ORDER BY table_name, ordinal_position"
        ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


async def test_every_backend_has_the_same_tables_and_columns(store: Store, tmp_path: Path) -> None:
    """Each backend has its own migrations (migrations.py, migrations_pg.py): they must describe one schema."""
    reference = SQLiteStore(tmp_path / "reference.db")
    reference.open(now=0.0)
    await reference.close(now=1.0)
    assert _columns(store) == _columns(reference)


async def test_capacity_samples_and_months_round_trip(store: Store) -> None:
    """5-minute samples are upserted per (circuit, direction, slot) and read back by period and circuit; months
    are upserted with their NULLs (no samples) kept as None; pruning deletes samples before a time only."""
    await store.save_capacity_samples([Sample("a", "in", 300.0 * k, 1e6 * k, 1e9) for k in range(1, 5)])
    await store.save_capacity_samples([Sample("a", "in", 600.0, 5e6, 2e9), Sample("b", "out", 600.0, 1.0, 10.0)])
    found = await store.capacity_samples(600.0, 1200.0)
    assert [(s.circuit, s.start, s.bits_per_second, s.capacity_bps) for s in found] == [
        ("a", 600.0, 5e6, 2e9), ("a", 900.0, 3e6, 1e9), ("b", 600.0, 1.0, 10.0)
    ]  # fmt: skip
    assert [s.circuit for s in await store.capacity_samples(0.0, 2000.0, "b")] == ["b"]
    assert await store.capacity_circuits(0.0, 2000.0) == ["a", "b"]
    assert await store.capacity_circuits(1000.0, 2000.0) == ["a"]
    months = [
        MonthFigures("a", "in", "2026-11", 8640, 8640, 0.5, 0.9, 1234.0, 5e8, 1e9, 5678.0),
        MonthFigures("a", "out", "2026-11", 0, 8640, None, None, None, None, None, 5678.0),
    ]
    await store.save_capacity_months(months)
    await store.save_capacity_months([MonthFigures("a", "in", "2026-11", 8000, 8640, 0.6, 0.9, 1.0, 6e8, 1e9, 2.0)])
    stored = await store.capacity_months(["2026-11", "2026-10"])
    assert stored == [MonthFigures("a", "in", "2026-11", 8000, 8640, 0.6, 0.9, 1.0, 6e8, 1e9, 2.0), months[1]]
    assert await store.prune_capacity_samples(900.0) == 3
    assert [s.start for s in await store.capacity_samples(0.0, 2000.0)] == [900.0, 1200.0]


async def test_oncall_changes_and_handovers(store: Store) -> None:
    """On-call overrides and swaps keep their slots (null: nobody) in order, a cancel is kept and marked,
    and a handover is recorded once per schedule and shift change."""
    from monitor.store.oncall_records import Handover, OnCallChange

    swap = OnCallChange("noc", "swap", {"noc/base/日勤/2026-12-08": "suzuki", "noc/base/日勤/2026-12-09": "tanaka"},
                        {"noc/base/日勤/2026-12-08": "tanaka", "noc/base/日勤/2026-12-09": "suzuki"}, "noc-lead", 100.0,
                        "通院")  # fmt: skip
    gap = OnCallChange("noc", "override", {"noc/base/夜勤/2026-12-08": None}, {"noc/base/夜勤/2026-12-08": "yamada"},
                       "admin", 101.0)  # fmt: skip
    other = OnCallChange("lgwan", "override", {"lgwan/base/日勤/2026-12-08": "boss"}, {}, "admin", 102.0)
    ids = [await store.oncall.add_change(c) for c in (swap, gap, other)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert [c.id for c in await store.oncall.changes("noc")] == ids[:2]
    cancelled = await store.oncall.cancel_change(ids[1], 150.0, "noc-lead")
    assert cancelled is not None and cancelled.cancelled_at == 150.0 and cancelled.cancelled_by == "noc-lead"
    again = await store.oncall.cancel_change(ids[1], 160.0, "admin")
    assert again is not None and again.cancelled_at == 150.0  # cancelled once
    assert await store.oncall.cancel_change(99999, 160.0, "admin") is None
    live = await store.oncall.changes(include_cancelled=False)
    assert [(c.id, c.slots, c.reason) for c in live] == [(ids[0], swap.slots, "通院"), (ids[2], other.slots, "")]
    assert (await store.oncall.changes("noc"))[1].slots == {"noc/base/夜勤/2026-12-08": None}

    first = Handover("noc", 200.0, ["suzuki"], ["yamada"], {"incidents": [{"id": 1}]})
    assert await store.oncall.save_handover(first) is True
    assert await store.oncall.save_handover(Handover("noc", 200.0, ["x"], ["y"])) is False  # once per change
    assert await store.oncall.save_handover(Handover("noc", 300.0, ["tanaka"], ["suzuki"])) is True
    latest = await store.oncall.handovers("noc")
    assert [(h.at, h.incoming) for h in latest] == [(300.0, ["tanaka"]), (200.0, ["suzuki"])]
    assert latest[1].summary == {"incidents": [{"id": 1}]}


def _draft(month: str = "2026-11", data: str = '{"a":1}') -> ReportVersion:
    return ReportVersion(month, 0, "draft", 200.0, "佐藤", "初版", data, "ab" * 32, None, "[]")


async def test_report_versions_draft_review_approve(store: Store) -> None:
    """Versions are numbered per month; a new draft supersedes the open one; review then approval by
    someone else; the approved version keeps its PDFs and cannot be changed, by the queries or by SQL."""
    first = await store.add_report_draft(_draft())
    second = await store.add_report_draft(_draft(data='{"a":2}'))
    assert (first.version, second.version) == (1, 2)
    assert [(v.version, v.status) for v in await store.report_versions("2026-11")] == [(1, "superseded"), (2, "draft")]
    assert not await store.review_report("2026-11", 1, "佐藤", 210.0, "ok")  # superseded: nothing to review
    assert await store.review_report("2026-11", 2, "佐藤", 210.0, "数値確認")
    assert not await store.approve_report("2026-11", 2, "佐藤", 220.0, "self", b"%PDF-ja", b"%PDF-en")  # same person
    assert await store.approve_report("2026-11", 2, "鈴木", 220.0, "承認", b"%PDF-ja", b"%PDF-en")
    kept = await store.report_version("2026-11", 2, pdfs=True)
    assert kept is not None and (kept.status, kept.reviewed_by, kept.approved_by) == ("approved", "佐藤", "鈴木")
    assert (kept.pdf_ja, kept.pdf_en, kept.data) == (b"%PDF-ja", b"%PDF-en", '{"a":2}')
    assert (await store.report_version("2026-11", 2)).pdf_ja is None  # type: ignore[union-attr]  # listing: no PDFs
    assert await store.report_version("2026-11", 3) is None
    assert not await store.review_report("2026-11", 2, "山田", 230.0, "again")
    third = await store.add_report_draft(_draft(data='{"a":3}'))  # a correction: the approved one stays approved
    assert third.version == 3
    assert [v.status for v in await store.report_versions()] == ["superseded", "approved", "draft"]
    assert await store.undistributed_reports() == [("2026-11", 2)]
    await store.report_distributed("2026-11", 2, 240.0, 2)
    await store.report_distributed("2026-11", 2, 250.0, 2)  # twice: no error, once recorded
    assert await store.undistributed_reports() == []


async def test_approved_report_version_is_immutable_in_the_schema(store: Store, tmp_path: Path) -> None:
    """Not only the queries: the schema refuses an UPDATE or DELETE of an approved version."""
    await store.add_report_draft(_draft())
    await store.review_report("2026-11", 1, "佐藤", 210.0, "ok")
    await store.approve_report("2026-11", 1, "鈴木", 220.0, "ok", b"%PDF", b"%PDF")
    for sql in ("UPDATE report_versions SET data = 'x'", "DELETE FROM report_versions"):
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.RaiseException)):
            await store.report_versions_q.db.write(lambda c, sql=sql: c.execute(sql))  # type: ignore[attr-defined]
    assert (await store.report_version("2026-11", 1)).data == '{"a":1}'  # type: ignore[union-attr]
