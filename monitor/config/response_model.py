"""Config of the response side: incidents, notifiers, contacts, escalation playbooks and routing,
maintenance windows, and API access (tokens and roles)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator, Field, model_validator

from monitor.config.acting_model import ActionLinks, MailReplies
from monitor.config.model import StrictModel
from monitor.config.oncall_model import Schedule
from monitor.config.types import AutoOrInterval, Duration, Interval, LabelName, Name
from monitor.notifiers.registry import NotifierConfig
from probes.secret import Secret

SEVERITIES = ("critical", "major", "minor", "warning")  # worst first
Severity = Literal["critical", "major", "minor", "warning"]
Role = Literal["viewer", "operator", "security", "admin", "alertmanager", "ids", "manager"]


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_names(field: str) -> str:
    """Standard cron counts weekdays from Sunday = 0 (7 is Sunday too); APScheduler 3 counts from
    Monday = 0. Numbers become names, which mean the same to both."""

    def name(token: str) -> str:
        return _WEEKDAYS[int(token)] if token.isdigit() and int(token) <= 7 else token

    parts = []
    for item in field.split(","):
        base, slash, step = item.partition("/")
        low, dash, high = base.partition("-")
        parts.append(name(low) + (dash + name(high) if dash else "") + slash + step)
    return ",".join(parts)


def cron_trigger(expression: str, timezone: tzinfo) -> CronTrigger:
    """An APScheduler trigger for a standard 5-field cron expression (weekday 0 = Sunday)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f'cron must have 5 fields (minute hour day month weekday), not "{expression}"')
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_weekday_names(weekday), timezone=timezone
    )


def _cron(value: str) -> str:
    try:
        cron_trigger(value, ZoneInfo("Asia/Tokyo"))
    except ValueError as exc:
        raise ValueError(f'invalid cron "{value}": {exc}') from None
    return value


Cron = Annotated[str, AfterValidator(_cron)]
Match = dict[LabelName, str | int | list[str | int]]


class SeverityRule(StrictModel):
    match: Match = {}  # labels of the target (or of an affected service); lists mean "any of"
    severity: Severity


class IncidentPolicy(StrictModel):
    open_on: list[Literal["down", "degraded", "flapping"]] = ["down"]
    # Pages wait this long, so a root cause found meanwhile absorbs its children. "auto": long enough
    # that a confirmed blip which recovers as fast as its checks allow has recovered before the first
    # page is due (never less than 10 s); see monitor.incidents.policy.first_page_wait.
    group_wait: AutoOrInterval = "auto"
    severity: list[SeverityRule] = []  # first match wins
    default_severity: Severity = "major"
    console_url: str = "http://127.0.0.1:9310"  # links in pages and alert annotations
    runbook_url: str | None = None  # template: {target}, {service}, {system}
    action_links: ActionLinks | None = None  # signed ack / escalate links in every page (monitor/incidents/links.py)
    mail_replies: MailReplies | None = None  # acknowledge by replying to a mail page (needs action_links' key)

    @model_validator(mode="after")
    def _replies_need_links(self) -> IncidentPolicy:
        if self.mail_replies is not None and self.action_links is None:
            raise ValueError("mail_replies needs action_links (its key signs the Reply-To tokens)")
        return self


class Contact(StrictModel):
    name: str  # as shown in pages and the timeline, e.g. 監視オペレータ当番
    email: str | None = None
    webhook: str | None = None  # a webhook notifier name, if this contact is reached by webhook
    phone: str | None = None  # for a `command` notifier (a voice or SMS gateway): given to it as {phone}


class Notify(StrictModel):
    contacts: list[Name] = []  # who (for email and webhook channels)
    schedule: Name | None = None  # and/or whoever is on call in this schedule when the level is paged
    via: list[Name] = Field(min_length=1)  # notifier names


class Level(StrictModel):
    notify: list[Notify] = Field(min_length=1)
    ack_timeout: Interval | None = None  # escalate to the next level if not acknowledged by then
    repeat: Interval | None = None  # re-page this level this often while unacknowledged


class Playbook(StrictModel):
    levels: list[Level] = Field(min_length=1)
    ack_expiry: Duration | None = None  # an ack older than this (incident not resolved) escalates again
    notify_resolved: bool = True


class Route(StrictModel):
    match: Match = {}  # incident labels, plus "severity"
    playbook: Name
    off_hours_playbook: Name | None = None  # nights, weekends and holidays (JST)


class OfficeHours(StrictModel):
    weekdays: list[int] = [1, 2, 3, 4, 5]  # ISO weekdays, Monday = 1
    start: time = time(8, 30)
    end: time = time(17, 45)
    timezone: str = "Asia/Tokyo"
    holidays: list[date] = []  # in addition to Japan's national holidays (built in)
    national_holidays: bool = True


class Routing(StrictModel):
    office_hours: OfficeHours = OfficeHours()
    routes: list[Route] = []  # first match wins; no match: the "default" playbook


class MaintenanceConfig(StrictModel):
    name: Name
    reason: str
    targets: list[Name] = []
    select: Match = {}  # target labels
    start: datetime | None = None  # one-off (ISO 8601; without an offset it is JST)
    end: datetime | None = None
    cron: Cron | None = None  # recurring, in `timezone`
    duration: Duration | None = None
    timezone: str = "Asia/Tokyo"

    @model_validator(mode="after")
    def _shape(self) -> MaintenanceConfig:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError("give either start and end (one-off) or cron and duration (recurring)")
        if one_off and (self.start is None or self.end is None or self.end <= self.start):
            raise ValueError("a one-off window needs start and an end after it")
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError("a recurring window needs cron and duration")
        if not self.targets and not self.select:
            raise ValueError("give targets or select: a window must say what it covers")
        return self


def _token_hash(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("token_sha256 must be 64 lower-case hex digits (sha256sum of the token)")
    return value


def _aware(value: datetime | None) -> datetime | None:
    """A time without an offset is JST."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    return value


class Token(StrictModel):
    name: Name  # who: appears in the audit log and timelines
    role: Role
    token: Secret | None = None  # the token itself, from ${ENV} or a file
    token_sha256: Annotated[str, AfterValidator(_token_hash)] | None = None  # or only its hash
    expires: Annotated[datetime | None, AfterValidator(_aware)] = None  # refused (401) from then on

    @model_validator(mode="after")
    def _one(self) -> Token:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token and token_sha256")
        return self


def _password_hash(value: str) -> str:
    if not re.fullmatch(r"scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+", value):
        raise ValueError("password_hash must come from `monitor hash-password` (scrypt$N$r$p$salt$hash)")
    return value


class User(StrictModel):
    """A person who logs in to the console (the password is only ever stored as a scrypt hash)."""

    name: Name
    role: Literal["viewer", "operator", "security", "admin", "manager"]  # manager: reviews and approves reports
    password_hash: Annotated[str, AfterValidator(_password_hash)] | None = None  # none: reverse-proxy login only


class ProxyAuth(StrictModel):
    """SSO behind a reverse proxy: the proxy authenticates and names the user in a header, which is
    believed only from these addresses; the user must be listed under users (that gives the role)."""

    user_header: str = "X-Forwarded-User"
    trusted: list[str] = ["127.0.0.1", "::1"]


class Sessions(StrictModel):
    idle_timeout: Duration = 3600.0
    max_age: Duration = 12 * 3600.0
    secure_cookie: Literal["auto", "always", "never"] = "auto"  # auto: Secure when the request came by https
    login_attempts: int = Field(default=5, ge=1, le=1000)  # failed logins per address (and per user) ...
    login_window: Interval = 300.0  # ... within this window before 429


class Auth(StrictModel):
    anonymous: Literal["none", "viewer"] = "viewer"  # what a request without a token may do
    tokens: list[Token] = []
    users: list[User] = []  # console logins
    proxy: ProxyAuth | None = None
    sessions: Sessions = Sessions()
    protect_metrics: bool = False  # /metrics and /healthz need the read permission too


class ResponseConfig(StrictModel):
    """The top-level keys this module adds to the config."""

    incidents: IncidentPolicy = IncidentPolicy()
    notifiers: dict[Name, NotifierConfig] = {}  # one entry per kind in monitor.notifiers.registry
    contacts: dict[Name, Contact] = {}
    playbooks: dict[Name, Playbook] = {}
    routing: Routing = Routing()
    maintenance: list[MaintenanceConfig] = []
    auth: Auth = Auth()
    schedules: dict[Name, Schedule] = {}  # on-call rotations (monitor.config.oncall_model)


def labels_match(match: dict[str, Any], labels: dict[str, str]) -> bool:
    """Every key of `match` equals the label (or is one of a list of values)."""
    for key, wanted in match.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if labels.get(key) not in {str(o) for o in options}:
            return False
    return True
