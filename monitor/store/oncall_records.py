"""What the store keeps of on-call schedules: the overrides and swaps made through the API, console and
CLI (each tied to slots: see monitor/oncall/rotation.py), and the handovers sent at shift changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ONCALL_CHANGE_KINDS = ("override", "swap")


@dataclass(slots=True)
class OnCallChange:
    """One override (a slot given to someone else, or left empty) or swap (two slots' people exchanged)."""

    schedule: str
    kind: str  # override, swap
    slots: dict[str, str | None]  # slot key -> who holds it from now on (None: nobody)
    previous: dict[str, str | None]  # slot key -> who held it before (the audit's "from")
    actor: str  # who made it
    created_at: float
    reason: str = ""
    cancelled_at: float | None = None
    cancelled_by: str | None = None
    id: int = 0


@dataclass(slots=True)
class Handover:
    """The summary the incoming shift got at a shift change (once per change: keyed by schedule and time)."""

    schedule: str
    at: float  # the shift change
    incoming: list[str]  # who came on duty
    outgoing: list[str]
    summary: dict[str, Any] = field(default_factory=dict)
