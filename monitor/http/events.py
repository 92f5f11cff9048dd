"""Live updates for the console: the daemon hands every outcome and incident change to the EventHub, which
fans small "something changed" events out to the browsers listening on `GET /api/v1/events` and bumps a
version that drops the read cache's entries (cache.ReadShield)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from monitor.core.engine import Outcome
from monitor.store.records import IncidentRecord
from monitor.timefmt import iso


class EventHub:
    """Fan-out of small change events to the browsers that listen (bounded per browser)."""

    def __init__(self) -> None:
        self.clients: set[asyncio.Queue[str]] = set()
        self.version = 0  # goes up whenever what the board or a list shows may have changed (cache.ReadShield)

    def touch(self) -> None:
        self.version += 1

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        message = f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
        for queue in list(self.clients):
            if queue.full():  # a slow browser: tell it to reload the board instead of queueing forever
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait("event: resync\ndata: {}\n\n")
            else:
                queue.put_nowait(message)

    def on_outcome(self, outcome: Outcome) -> None:
        """Daemon listener: one event per outcome (a batch of transitions), not one per check."""
        changes = [t for t in outcome.transitions if t.kind in ("check", "service")]
        if outcome.transitions:
            self.touch()
        if changes and self.clients:
            first = changes[0]
            self.publish(
                "change", {"count": len(changes), "id": first.id, "state": first.new.value, "at": iso(first.at)}
            )

    def on_incident(self, incident: IncidentRecord) -> None:
        self.touch()
        if self.clients:
            self.publish("incident", {"id": incident.id, "status": incident.status, "level": incident.level})
