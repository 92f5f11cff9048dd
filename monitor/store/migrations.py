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
)
