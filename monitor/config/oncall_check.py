"""Cross references of the on-call schedules: members are contacts, managers are users or tokens,
handovers go through email notifiers. (Coverage over the coming weeks needs the stored overrides too:
`monitor check-config` checks it, monitor/oncall/coverage.py.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.config.errors import Issue

if TYPE_CHECKING:
    from monitor.config.response_model import ResponseConfig


def check_schedules(config: ResponseConfig) -> list[Issue]:
    issues: list[Issue] = []
    people = {t.name for t in config.auth.tokens} | {u.name for u in config.auth.users}
    for name, schedule in config.schedules.items():
        for i, layer in enumerate(schedule.layers):
            for j, member in enumerate(layer.members):
                if member not in config.contacts:
                    listed = ", ".join(sorted(config.contacts)) or "none defined"
                    issues.append(
                        Issue(("schedules", name, "layers", i, "members", j), f'unknown contact "{member}" ({listed})')
                    )
        for j, manager in enumerate(schedule.managers):
            if manager not in people:
                issues.append(Issue(("schedules", name, "managers", j), f'"{manager}" is no user or token under auth'))
        if schedule.handover is not None:
            for j, via in enumerate(schedule.handover.via):
                notifier = config.notifiers.get(via)
                if notifier is None:
                    issues.append(Issue(("schedules", name, "handover", "via", j), f'unknown notifier "{via}"'))
                elif notifier.kind != "email":
                    issues.append(
                        Issue(("schedules", name, "handover", "via", j), f'"{via}" is {notifier.kind}, not email')
                    )
    return issues
