"""Cross references of the response config: playbooks name real notifiers and contacts, routes name
real playbooks, maintenance windows name real targets. Each problem at the path of the item at fault."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.config.errors import Issue
from monitor.config.flows_check import check_flows
from monitor.config.oncall_check import check_schedules
from monitor.config.response_model import ResponseConfig
from monitor.config.security_model import SecurityConfig
from monitor.config.slo_model import SLOConfig


def _known(kind: str, name: str, names: set[str]) -> str | None:
    if name in names:
        return None
    listed = ", ".join(sorted(names)) or "none defined"
    return f'unknown {kind} "{name}" ({kind}s: {listed})'


def _timezone(issues: list[Issue], loc: tuple[str | int, ...], name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        issues.append(Issue(loc, f'unknown time zone "{name}" (e.g. Asia/Tokyo)'))


def check_response(config: ResponseConfig, targets: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    notifiers, contacts = set(config.notifiers), set(config.contacts)
    for name, contact in config.contacts.items():
        if contact.webhook is not None and (problem := _known("notifier", contact.webhook, notifiers)):
            issues.append(Issue(("contacts", name, "webhook"), problem))
    for name, playbook in config.playbooks.items():
        for i, level in enumerate(playbook.levels):
            for j, notify in enumerate(level.notify):
                loc = ("playbooks", name, "levels", i, "notify", j)
                for k, via in enumerate(notify.via):
                    if problem := _known("notifier", via, notifiers):
                        issues.append(Issue((*loc, "via", k), problem))
                    elif config.notifiers[via].kind != "alertmanager" and not notify.contacts and not notify.schedule:
                        issues.append(Issue((*loc, "via", k), f'"{via}" ({config.notifiers[via].kind}) needs contacts'))
                for k, contact_name in enumerate(notify.contacts):
                    if problem := _known("contact", contact_name, contacts):
                        issues.append(Issue((*loc, "contacts", k), problem))
                if notify.schedule is not None and (
                    problem := _known("schedule", notify.schedule, set(config.schedules))
                ):
                    issues.append(Issue((*loc, "schedule"), problem))
    playbooks = set(config.playbooks)
    for i, route in enumerate(config.routing.routes):
        for key in ("playbook", "off_hours_playbook"):
            name = getattr(route, key)
            if name is not None and (problem := _known("playbook", name, playbooks)):
                issues.append(Issue(("routing", "routes", i, key), problem))
    if config.notifiers and "default" not in playbooks and not any(not r.match for r in config.routing.routes):
        issues.append(Issue(("playbooks",), 'define a playbook named "default" (or a route matching everything)'))
    _timezone(issues, ("routing", "office_hours", "timezone"), config.routing.office_hours.timezone)
    for i, window in enumerate(config.maintenance):
        for j, target in enumerate(window.targets):
            if target not in targets:
                issues.append(Issue(("maintenance", i, "targets", j), f'unknown target "{target}"'))
        _timezone(issues, ("maintenance", i, "timezone"), window.timezone)
    issues += check_schedules(config)
    names = [t.name for t in config.auth.tokens]
    for i, token in enumerate(config.auth.tokens):
        if names.count(token.name) > 1:
            issues.append(Issue(("auth", "tokens", i, "name"), f'duplicate token name "{token.name}"'))
    return issues


def check_slo(slo: SLOConfig, services: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    hours = {"always", *slo.hours}
    if problem := _known("service hours", slo.service_hours, hours):
        issues.append(Issue(("slo", "service_hours"), problem))
    for name, definition in slo.hours.items():
        _timezone(issues, ("slo", "hours", name, "timezone"), definition.timezone)
    for i, rule in enumerate(slo.rules):
        if rule.service_hours is not None and (problem := _known("service hours", rule.service_hours, hours)):
            issues.append(Issue(("slo", "rules", i, "service_hours"), problem))
        for j, service in enumerate(rule.services):
            if service not in services:
                issues.append(Issue(("slo", "rules", i, "services", j), f'unknown service "{service}"'))
    return issues


def check_security(security: SecurityConfig | None, response: ResponseConfig, inventory: Any) -> list[Issue]:
    """Connections name a real SNMP interface check, real targets, playbooks, contacts and notifiers."""
    if security is None:
        return []
    issues: list[Issue] = []
    names = [c.name for c in security.connections]
    for i, connection in enumerate(security.connections):
        loc: tuple[str | int, ...] = ("security", "connections", i)
        if names.count(connection.name) > 1:
            issues.append(Issue((*loc, "name"), f'duplicate connection name "{connection.name}"'))
        check = inventory.checks.get(connection.check)
        if check is None:
            issues.append(Issue((*loc, "check"), f'unknown check "{connection.check}" (write "target/check")'))
        elif check.kind != "snmp" or "interface" not in check.request.params:
            issues.append(Issue((*loc, "check"), f'"{connection.check}" is not an SNMP interface check'))
        for j, target in enumerate(connection.targets):
            if target not in inventory.targets:
                issues.append(Issue((*loc, "targets", j), f'unknown target "{target}"'))
        if problem := _known("security playbook", connection.playbook, set(security.playbooks)):
            issues.append(Issue((*loc, "playbook"), problem))
        if connection.notify is not None:
            for k, via in enumerate(connection.notify.via):
                if problem := _known("notifier", via, set(response.notifiers)):
                    issues.append(Issue((*loc, "notify", "via", k), problem))
            for k, contact in enumerate(connection.notify.contacts):
                if problem := _known("contact", contact, set(response.contacts)):
                    issues.append(Issue((*loc, "notify", "contacts", k), problem))
    for name, book in security.playbooks.items():
        if problem := _known("playbook", book.page, set(response.playbooks)):
            issues.append(Issue(("security", "playbooks", name, "page"), problem))
    return issues + check_flows(security, inventory)


def check_status(config: Any, inventory: Any) -> list[Issue]:
    """Public services show real services; subscribers are real contacts reached by real notifiers."""
    issues: list[Issue] = []
    page = config.status_page
    public = {s.id for s in page.services} if page is not None else set()
    if page is not None:
        for i, service in enumerate(page.services):
            for j, name in enumerate(service.services):
                if name not in inventory.services:
                    issues.append(Issue(("status_page", "services", i, "services", j), f'unknown service "{name}"'))
    for i, sub in enumerate(config.notices.subscribers):
        loc: tuple[str | int, ...] = ("notices", "subscribers", i)
        if problem := _known("contact", sub.contact, set(config.contacts)):
            issues.append(Issue((*loc, "contact"), problem))
        for k, via in enumerate(sub.via):
            if problem := _known("notifier", via, set(config.notifiers)):
                issues.append(Issue((*loc, "via", k), problem))
        for k, name in enumerate(sub.services):
            if problem := _known("public service", name, public):
                issues.append(Issue((*loc, "services", k), problem))
    return issues
