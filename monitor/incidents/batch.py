"""What one change of the incidents writes: the unit the manager and the operator actions share."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.store.records import IncidentEvent, IncidentRecord, OutboxItem


@dataclass
class Batch:
    """What one outcome changes, written in as few transactions as possible."""

    created: list[tuple[IncidentRecord, IncidentEvent]] = field(default_factory=list)
    saved: dict[str, tuple[IncidentRecord, list[IncidentEvent]]] = field(default_factory=dict)
    pages: list[OutboxItem] = field(default_factory=list)
    resolved: list[IncidentRecord] = field(default_factory=list)
    merges: list[tuple[IncidentRecord, IncidentRecord]] = field(default_factory=list)  # (merged, into)
    rerated: list[IncidentRecord] = field(default_factory=list)  # severity changed after the first page

    def touch(self, incident: IncidentRecord, *events: IncidentEvent) -> None:
        if any(incident is created for created, _ in self.created):
            return  # written whole when created (its events are recorded then)
        entry = self.saved.setdefault(incident.key, (incident, []))
        entry[1].extend(events)
