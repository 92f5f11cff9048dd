"""Pure policy: an incident's severity from the rules, and its playbook from the routes and the time
of day (JST office hours vs nights, weekends and Japan's national holidays)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from monitor.config.response_model import SEVERITIES, IncidentPolicy, OfficeHours, Routing, labels_match
from monitor.config.status_model import Recovery
from monitor.core.inventory import Check
from monitor.store.records import IncidentRecord

DEGRADED_SEVERITY = "minor"  # a service that still works (a backup circuit carries the traffic)
AUTO_GROUP_WAIT_MIN = 10.0  # group_wait "auto" never waits less (the old fixed default)
BLIP_MARGIN = 2.0  # scheduler lag and the recovering probes' own duration: a blip is back well within this


def worst(severities: Iterable[str]) -> str:
    ranked = [s for s in severities if s in SEVERITIES]
    return min(ranked, key=SEVERITIES.index) if ranked else SEVERITIES[-1]


def severity_for(labels: dict[str, str], policy: IncidentPolicy) -> str:
    for rule in policy.severity:
        if labels_match(rule.match, labels):
            return rule.severity
    return policy.default_severity


def incident_severity(
    target_labels: dict[str, str],
    services: dict[str, tuple[str, dict[str, str]]],
    policy: IncidentPolicy,
    degraded_only: bool = False,
) -> str:
    """The target's own severity, raised by the services it takes down. When every affected service
    still works (DEGRADED: a backup circuit carries the traffic), or the check is only DEGRADED, it is
    minor at most."""
    own = severity_for(target_labels, policy)
    down = [severity_for(labels, policy) for state, labels in services.values() if state in ("down", "unreachable")]
    if down and not degraded_only:
        return worst([own, *down])
    if services or degraded_only:
        return max(own, DEGRADED_SEVERITY, key=SEVERITIES.index)  # the less severe of the two
    return own


def blip_recovery(check: Check) -> float:
    """How long after a check is confirmed DOWN a blip (the fault already gone) has it UP again, at the
    latest. The run began with a regular probe; `failures_to_down - 1` retries confirmed it, the next
    regular probe comes `interval` after the first, and `successes_to_up - 1` retries confirm recovery."""
    policy = check.policy
    return max(0.0, check.interval + (policy.successes_to_up - policy.failures_to_down) * check.retry_interval)


def first_page_wait(policy: IncidentPolicy, checks: Iterable[Check]) -> float:
    """How long after opening an incident its first page is due. A number is taken as given; "auto"
    waits until a blip of any of the incident's checks would have recovered (plus a margin), so whether
    a confirmed, already-recovered blip pages never depends on a few milliseconds either way."""
    if policy.group_wait != "auto":
        return policy.group_wait
    return max([AUTO_GROUP_WAIT_MIN, *(blip_recovery(c) + BLIP_MARGIN for c in checks)])


@cache
def _national_holidays(year: int) -> frozenset[object]:
    return frozenset(holidays.country_holidays("JP", years=year).keys())


def is_holiday(day: date, hours: OfficeHours) -> bool:
    """A listed holiday, or (when enabled) one of Japan's national holidays."""
    return day in hours.holidays or (hours.national_holidays and day in _national_holidays(day.year))


def in_office_hours(now: float, hours: OfficeHours) -> bool:
    local = datetime.fromtimestamp(now, ZoneInfo(hours.timezone))
    if local.isoweekday() not in hours.weekdays or is_holiday(local.date(), hours):
        return False
    return hours.start <= local.time() < hours.end


def choose_playbook(labels: dict[str, str], severity: str, routing: Routing, now: float) -> str:
    """The first route whose match fits (labels plus severity); off-hours routes where given."""
    facts = {**labels, "severity": severity}
    for route in routing.routes:
        if labels_match(route.match, facts):
            if route.off_hours_playbook and not in_office_hours(now, routing.office_hours):
                return route.off_hours_playbook
            return route.playbook
    return "default"


def recovery_objective(labels: dict[str, str], severity: str, recovery: Recovery) -> float | None:
    """目標復旧時間 of an incident, in seconds: the first rule matching its labels (and severity)."""
    subject = {**labels, "severity": severity}
    for rule in recovery.objectives:
        if labels_match(rule.match, subject):
            return rule.objective
    return recovery.default


def peak_severity(severity: str, affected: dict[str, object]) -> str:
    """The worst severity an incident has had: a recovery objective is judged by it, not by the milder
    severity an incident may fall to while it recovers (one of two servers back: minor)."""
    peak = affected.get("peak_severity")
    return worst([severity, peak]) if isinstance(peak, str) else severity


def incident_objective(incident: IncidentRecord, recovery: Recovery) -> float | None:
    """The recovery objective an incident is held to, by the worst severity it reached."""
    return recovery_objective(incident.labels, peak_severity(incident.severity, incident.affected), recovery)
