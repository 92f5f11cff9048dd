"""IncidentActions needs only its Ledger: operator actions and inbound alerts against a ledger of plain
values (no manager, no engine), so what an action does is read and tested on its own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.config.response_model import ResponseConfig
from monitor.incidents.actions import IncidentActionError, IncidentActions, Ledger
from monitor.incidents.batch import Batch
from monitor.store.records import IncidentRecord


class FakeLedger:
    def __init__(self) -> None:
        self.open: dict[str, IncidentRecord] = {}
        self.response = ResponseConfig()
        self.commits: list[Batch] = []
        self.closed: list[tuple[str, str]] = []
        self.escalations: list[str] = []

    @contextlib.asynccontextmanager
    async def locked(self) -> AsyncIterator[float]:
        yield 1000.0

    async def commit(self, batch: Batch, now: float) -> None:
        for incident, _ in batch.created:
            incident.id = incident.id or len(self.open)
        self.commits.append(batch)

    def escalate(
        self, incident: IncidentRecord, now: float, batch: Batch, reason: str, actor: str | None = None
    ) -> bool:
        self.escalations.append(reason)
        return False  # no playbook

    def close(self, incident: IncidentRecord, now: float, actor: str, reason: str, batch: Batch) -> None:
        incident.status = "resolved"
        self.open.pop(incident.key, None)
        self.closed.append((actor, reason))


class NoStore:
    async def get_incident(self, incident_id: int) -> IncidentRecord | None:
        return None


def actions(ledger: FakeLedger) -> IncidentActions:
    typed: Ledger = ledger  # the fake satisfies the protocol the manager implements
    store: Any = NoStore()  # only get_incident is used, for incidents no longer open
    return IncidentActions(typed, store)


def incident(**fields: Any) -> IncidentRecord:
    return IncidentRecord(key="target:x", severity="major", title="x", title_en="x", opened_at=0.0, reason="r", id=7,
                          **fields)  # fmt: skip


async def test_acknowledge_and_resolve_go_through_the_ledger() -> None:
    ledger = FakeLedger()
    ledger.open["target:x"] = found = incident()
    await actions(ledger).acknowledge(7, "yamada", "調査中")
    assert (found.status, found.acked_by, found.acked_at) == ("acknowledged", "yamada", 1000.0)
    assert [e.kind for e in ledger.commits[-1].saved["target:x"][1]] == ["acknowledged"]
    with pytest.raises(IncidentActionError, match="already acknowledged by yamada"):
        await actions(ledger).acknowledge(7, "suzuki")
    await actions(ledger).resolve(7, "suzuki", "暫定復旧")
    assert ledger.closed == [("suzuki", "暫定復旧")]


async def test_unknown_incident_and_no_playbook_are_refused() -> None:
    ledger = FakeLedger()
    with pytest.raises(IncidentActionError, match="no incident #3"):
        await actions(ledger).add_note(3, "yamada", "x")
    ledger.open["target:x"] = incident()
    with pytest.raises(IncidentActionError, match="no playbook to escalate with"):
        await actions(ledger).escalate_now(7, "yamada")
    assert ledger.escalations == ["escalated by hand"]


async def test_alerts_open_once_and_resolve() -> None:
    ledger = FakeLedger()
    firing = {
        "labels": {"alertname": "ServiceErrorBudgetBurn", "severity": "page", "service": "s"},
        "fingerprint": "f1",
    }
    assert await actions(ledger).receive_alerts([firing, {"labels": {"generator": "national-monitor"}}]) == {
        "opened": 1, "updated": 0, "resolved": 0, "ignored": 1}  # fmt: skip
    assert ledger.open["alert:f1"].severity == "critical"
    counts = await actions(ledger).receive_alerts([firing, {**firing, "status": "resolved"}])
    assert counts == {"opened": 0, "updated": 1, "resolved": 1, "ignored": 0}
    assert ledger.closed == [("alertmanager", "alert resolved")]
