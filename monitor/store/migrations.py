"""Versioned schema migrations, applied in order and recorded in PRAGMA user_version.

Never edit a released migration: add the next one.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: state intervals (availability is computed from these) and daemon runs (monitoring gaps).
    """
    CREATE TABLE state_intervals (
        id INTEGER PRIMARY KEY,
        subject TEXT NOT NULL CHECK (subject IN ('check', 'service')),
        subject_id TEXT NOT NULL,
        state TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL,
        reason TEXT,
        root_cause TEXT
    );
    CREATE INDEX state_intervals_by_subject ON state_intervals (subject, subject_id, start);
    CREATE UNIQUE INDEX state_intervals_open ON state_intervals (subject, subject_id) WHERE end IS NULL;
    CREATE TABLE daemon_runs (
        id INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        last_seen REAL NOT NULL,
        stopped REAL,
        version TEXT NOT NULL
    );
    """,
    # 2: incidents and their timeline, the notification outbox, maintenance windows, the audit log.
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        title_en TEXT NOT NULL,
        reason TEXT,
        labels TEXT NOT NULL DEFAULT '{}',
        playbook TEXT,
        level INTEGER NOT NULL DEFAULT 0,
        next_escalation_at REAL,
        next_repeat_at REAL,
        repeats INTEGER NOT NULL DEFAULT 0,
        opened_at REAL NOT NULL,
        acked_at REAL,
        acked_by TEXT,
        ack_expires_at REAL,
        resolved_at REAL,
        resolved_by TEXT,
        resolve_reason TEXT,
        merged_into INTEGER REFERENCES incidents (id),
        affected TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents (key) WHERE status != 'resolved';
    CREATE INDEX incidents_by_status ON incidents (status, opened_at);
    CREATE TABLE incident_events (
        id INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX incident_events_by_incident ON incident_events (incident_id, at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        incident_id INTEGER REFERENCES incidents (id),
        level INTEGER NOT NULL,
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL,
        created_at REAL NOT NULL,
        sent_at REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, not_before);
    CREATE INDEX outbox_by_incident ON outbox (incident_id);
    CREATE TABLE maintenance (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        source TEXT NOT NULL,
        starts_at REAL,
        ends_at REAL,
        cron TEXT,
        duration REAL,
        timezone TEXT NOT NULL,
        scope TEXT NOT NULL,
        cancelled_at REAL,
        cancelled_by TEXT
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        role TEXT,
        action TEXT NOT NULL,
        object TEXT,
        outcome TEXT NOT NULL,
        source TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    -- append-only: the chain of hashes makes edits evident, these triggers make them fail
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    """,
    # 3: availability corrections (an outage re-classified as planned) and monthly roll-ups (kept 13+ months);
    #    a covering index so a month of intervals is read from the index alone (5x faster for reports).
    """
    DROP INDEX state_intervals_by_subject;
    CREATE INDEX state_intervals_covering ON state_intervals (subject, subject_id, start, end, state, root_cause);
    CREATE TABLE corrections (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        start REAL NOT NULL,
        end REAL NOT NULL CHECK (end > start),
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX corrections_by_service ON corrections (service, start);
    CREATE TABLE availability_months (
        service TEXT NOT NULL,
        month TEXT NOT NULL,
        service_seconds REAL NOT NULL,
        maintenance_seconds REAL NOT NULL,
        gap_seconds REAL NOT NULL,
        downtime_seconds REAL NOT NULL,
        outages INTEGER NOT NULL,
        longest_outage_seconds REAL NOT NULL,
        objective REAL NOT NULL,
        PRIMARY KEY (service, month)
    );
    """,
    # 4: the disconnect playbook: security incidents (one open per connection) and the traffic baselines
    #    the anomaly detector learns (per connection, metric and hour of the week).
    """
    CREATE TABLE security_incidents (
        id INTEGER PRIMARY KEY,
        connection TEXT NOT NULL,
        phase TEXT NOT NULL,
        opened_at REAL NOT NULL,
        closed_at REAL,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX security_incidents_open ON security_incidents (connection) WHERE closed_at IS NULL;
    CREATE INDEX security_incidents_by_time ON security_incidents (opened_at);
    CREATE TABLE traffic_baselines (
        connection TEXT NOT NULL,
        metric TEXT NOT NULL,
        hour_of_week INTEGER NOT NULL CHECK (hour_of_week BETWEEN 0 AND 167),
        mean REAL NOT NULL,
        samples INTEGER NOT NULL,
        PRIMARY KEY (connection, metric, hour_of_week)
    );
    """,
    # 5: notices (お知らせ) for the status page and the governments' contacts.
    """
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('draft', 'published', 'closed')),
        incident_id INTEGER,
        published_at REAL,
        created_at REAL NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX notices_by_incident ON notices (incident_id);
    CREATE INDEX notices_by_status ON notices (status, id);
    """,
    # 6: the leader lease of daemons sharing one store (HA; used on PostgreSQL).
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        renewed_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    # circuit capacity: 5-minute samples per circuit and direction, and the months rolled up from them.
    """
    CREATE TABLE capacity_samples (
        circuit TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        start REAL NOT NULL,
        bits_per_second REAL NOT NULL CHECK (bits_per_second >= 0),
        capacity_bps REAL NOT NULL CHECK (capacity_bps > 0),
        PRIMARY KEY (circuit, direction, start)
    );
    CREATE INDEX capacity_samples_by_time ON capacity_samples (start);
    CREATE TABLE capacity_months (
        circuit TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        month TEXT NOT NULL,
        samples INTEGER NOT NULL,
        slots INTEGER NOT NULL,
        p95_ratio REAL,
        peak_ratio REAL,
        peak_at REAL,
        p95_bps REAL,
        capacity_bps REAL,
        midpoint REAL NOT NULL,
        PRIMARY KEY (circuit, direction, month)
    );
    """,
    # on-call: overrides and swaps of schedule slots, and the handovers sent at shift changes (issue 21).
    """
    CREATE TABLE oncall_changes (
        id INTEGER PRIMARY KEY,
        schedule TEXT NOT NULL,
        created_at REAL NOT NULL,
        cancelled_at REAL,
        body TEXT NOT NULL
    );
    CREATE INDEX oncall_changes_by_schedule ON oncall_changes (schedule, id);
    CREATE TABLE oncall_handovers (
        schedule TEXT NOT NULL,
        at REAL NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (schedule, at)
    );
    """,
    # flow policy (issue 19): the peers each connection talked to while its baseline was learned
    """
    CREATE TABLE flow_peers (
        connection TEXT NOT NULL,
        peer TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (connection, peer)
    );
    """,
    # report versions: the monthly report as a signed record (draft -> reviewed -> approved; an approved
    # version is immutable, kept by triggers, not only by the code), and the approved versions whose
    # prefecture variants have all been put in the outbox (the rest are resumed after a restart).
    """
    CREATE TABLE report_versions (
        month TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        status TEXT NOT NULL CHECK (status IN ('draft', 'reviewed', 'approved', 'superseded')),
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        data TEXT NOT NULL,
        data_sha256 TEXT NOT NULL,
        supersedes INTEGER,
        changes TEXT NOT NULL,
        reviewed_by TEXT,
        reviewed_at REAL,
        review_comment TEXT,
        approved_by TEXT,
        approved_at REAL,
        approve_comment TEXT,
        pdf_ja BLOB,
        pdf_en BLOB,
        PRIMARY KEY (month, version),
        CHECK (status IN ('draft', 'superseded') OR reviewed_by IS NOT NULL),
        CHECK (status <> 'approved' OR (approved_by IS NOT NULL AND approved_by <> reviewed_by AND pdf_ja IS NOT NULL))
    );
    CREATE UNIQUE INDEX report_versions_one_open ON report_versions (month) WHERE status IN ('draft', 'reviewed');
    CREATE TRIGGER report_versions_frozen BEFORE UPDATE ON report_versions WHEN OLD.status = 'approved'
    BEGIN SELECT RAISE(ABORT, 'an approved report version is immutable'); END;
    CREATE TRIGGER report_versions_kept BEFORE DELETE ON report_versions WHEN OLD.status = 'approved'
    BEGIN SELECT RAISE(ABORT, 'an approved report version is kept'); END;
    CREATE TABLE report_distributions (
        month TEXT NOT NULL,
        version INTEGER NOT NULL,
        queued_at REAL NOT NULL,
        items INTEGER NOT NULL,
        PRIMARY KEY (month, version)
    );
    """,
    # action links used (acknowledge / escalate from the page): each signed link works once, across restarts.
    """
    CREATE TABLE action_link_uses (
        digest TEXT PRIMARY KEY,
        incident_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        used_at REAL NOT NULL
    );
    CREATE INDEX action_link_uses_by_incident ON action_link_uses (incident_id);
    """,
)
