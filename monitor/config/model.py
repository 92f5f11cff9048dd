"""The config schema (pydantic v2, strict: unknown keys are errors).

Only the shape and single values are checked here; cross references (modules, parents, sites,
services) are checked when the model is resolved into an inventory (monitor.core.inventory).
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from monitor.config.flows import FlowsConfig
from monitor.config.http_model import HttpListenerConfig
from monitor.config.traps import TrapsConfig
from monitor.config.types import (
    Duration,
    Interval,
    LabelName,
    Listen,
    Name,
    PrefectureCode,
    Timeout,
    format_duration,
    prefecture_code,
    printable,
)
from probes.registry import KINDS, settings_model
from probes.secret import Secret

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HEX_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]*")
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(StrEnum):
    NATIONAL = "national"  # national servers in the national centers
    PREFECTURE = "prefecture"  # prefecture network equipment
    AGGREGATION = "aggregation"  # prefecture-server aggregation center
    LGWAN = "lgwan"  # LGWAN core and access points
    MUNICIPALITY = "municipality"  # municipal connections and circuits
    ASP = "asp"  # LGWAN-ASP services


class SiteKind(StrEnum):
    NATIONAL_CENTER = "national_center"
    PREFECTURE = "prefecture"
    AGGREGATION_CENTER = "aggregation_center"
    LGWAN_ACCESS_POINT = "lgwan_access_point"
    MUNICIPALITY = "municipality"
    ASP = "asp"


def _normalise_labels(value: dict[str, Any]) -> dict[str, str]:
    """Labels are text; `tier` must be a known tier and `prefecture` a JIS code (names accepted)."""
    out: dict[str, str] = {}
    for key, raw in value.items():
        text = str(raw)
        if key == "tier" and text not in {t.value for t in Tier}:
            raise ValueError(f'tier must be one of {", ".join(t.value for t in Tier)}, not "{text}"')
        if key == "prefecture":
            text = prefecture_code(raw)
        out[key] = text
    return out


Labels = Annotated[dict[LabelName, str | int], AfterValidator(_normalise_labels)]


class Thresholds(StrictModel):
    """When an ok probe result still makes the check DEGRADED."""

    latency: Timeout | None = None  # whole probe took longer
    rtt: Timeout | None = None  # ICMP average round trip above
    loss_ratio: float | None = Field(default=None, gt=0, le=1)  # ICMP loss at or above
    cert_expiry: Duration | None = None  # TLS certificate expires within
    crl_remaining: Duration | None = None  # CRL nextUpdate within


class Timing(StrictModel):
    """Settings that defaults, modules and checks can each set (the most specific wins)."""

    interval: Interval | None = None
    timeout: Timeout | None = None
    retry_interval: Interval | None = None  # while failing or recovering: confirm fast
    failures_to_down: int | None = Field(default=None, ge=1, le=100)
    successes_to_up: int | None = Field(default=None, ge=1, le=100)
    degraded: Thresholds | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float | None, info: ValidationInfo) -> float | None:
        # both on one layer: said here, once (a check combining layers is checked when resolved)
        interval = info.data.get("interval")
        if value is not None and interval is not None:
            _timeout_fits(value, interval)
        return value


def _timeout_fits(timeout: float, interval: float) -> None:
    """A probe that may run longer than its interval would overlap the next one (which is skipped)."""
    if timeout > interval:
        raise ValueError(
            f"timeout ({format_duration(timeout)}) must not be longer than interval ({format_duration(interval)})"
        )


class Defaults(StrictModel):
    interval: Interval = 30.0
    timeout: Timeout = 5.0
    retry_interval: Interval = 5.0
    failures_to_down: int = Field(default=3, ge=1, le=100)
    successes_to_up: int = Field(default=2, ge=1, le=100)
    flap_window: Interval = 600.0  # flapping: this many state changes ...
    flap_transitions: int = Field(default=6, ge=2, le=1000)  # ... within flap_window
    degraded: Thresholds = Thresholds()

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float, info: ValidationInfo) -> float:
        if "interval" in info.data:  # absent when the interval itself was invalid (reported already)
            _timeout_fits(value, info.data["interval"])
        return value


def _module_model() -> type[BaseModel]:
    """A module: `kind` plus a block named after the kind, built from the probe registry so adding a
    probe kind needs no change here."""
    blocks: dict[str, Any] = {name: (settings_model(name) | None, None) for name in KINDS}

    def one_block(self: Any) -> Any:
        given = [name for name in KINDS if getattr(self, name) is not None and name != self.kind]
        if given:
            raise ValueError(f'a module of kind "{self.kind}" cannot have a "{given[0]}" block')
        if getattr(self, self.kind) is None:
            object.__setattr__(self, self.kind, settings_model(self.kind)())
        return self

    fields: dict[str, Any] = {
        "kind": (Literal[tuple(KINDS)], ...),
        "max_concurrency": (int | None, Field(default=None, ge=1, le=100_000)),  # probes of this module in flight
        "reachability": (bool | None, None),  # do its checks decide whether the target is reachable?
        **blocks,
    }
    validators: dict[str, Any] = {"_one_block": model_validator(mode="after")(one_block)}
    return create_model("Module", __base__=Timing, __validators__=validators, **fields)


Module: Any = _module_model()


class CheckConfig(Timing):
    module: Name
    name: Name | None = None  # default: the module name
    port: int | None = Field(default=None, ge=1, le=65535)
    url: str | None = None  # http: full URL instead of scheme://address:port/path
    query_name: str | None = None  # dns: the name to ask for
    interface: str | int | None = None  # snmp: watch this interface (ifName, ifDescr, ifAlias or ifIndex)
    reachability: bool | None = None
    enabled: bool = True


class AtLeast(StrictModel):
    at_least: int = Field(ge=1)


RULE_HELP = 'must be "all", "any" or {at_least: N} (in CSV: at_least:N)'


def _parse_rule(value: Any) -> Literal["all", "any"] | AtLeast:
    """Rules are "all", "any" or {at_least: N}; CSV cells may say "at_least:2"."""
    if value in ("all", "any") or isinstance(value, AtLeast):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and value.replace(" ", "").startswith("at_least:"):
        value = {"at_least": value.split(":", 1)[1].strip()}
    if isinstance(value, dict) and set(value) == {"at_least"}:
        try:
            count = int(value["at_least"])
        except (TypeError, ValueError):
            count = 0
        if count >= 1:
            return AtLeast(at_least=count)
    raise ValueError(RULE_HELP)


Rule = Annotated[Literal["all", "any"] | AtLeast, PlainValidator(_parse_rule)]


class TargetConfig(StrictModel):
    name: Name
    address: str
    hostname: str | None = None  # name for TLS SNI, Host header and certificate checks
    description: str | None = None
    site: Name | None = None
    labels: Labels = {}
    parent: Name | None = None  # the upstream device: down parent -> this target UNREACHABLE
    modules: list[Name] = []  # shorthand: one check per module with the module's settings
    checks: list[CheckConfig] = []
    service: Name | None = None  # this target's checks belong to that service
    service_rule: Rule | None = None  # declares `service` here when it is not under services

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return host_or_address(value)

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        return None if value is None else host_or_address(value)  # it ends up in SNI and the Host header


def host_or_address(value: str) -> str:
    """An IP address (normalised) or a valid DNS host name.

    A name whose last label is all digits is not a host name (RFC 1123, 2.1; a top-level domain is
    never numeric): `999.1.1.1` or `10.0.1` is a mistyped IPv4 address, which a resolver would
    otherwise turn into some address (inet_aton reads "10.0.1" as 10.0.0.1) or a lookup that fails
    at every probe."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    shown = printable(value, 80)
    last_label = value.rstrip(".").rsplit(".", 1)[-1]
    if last_label.isdigit() or _HEX_NUMBER.fullmatch(last_label):  # 0x7f000001 is 127.0.0.1 to inet_aton
        raise ValueError(f'"{shown}" is not a valid IP address')
    if _HOSTNAME.match(value):
        return value
    raise ValueError(f'"{shown}" is neither an IP address nor a host name')


class Selector(StrictModel):
    """Checks whose target labels match every key (a value or a list of values) and, when given,
    whose module or kind is listed."""

    labels: dict[LabelName, str | int | list[str | int]] = {}
    modules: list[Name] = []
    kinds: list[str] = []


class ServiceConfig(StrictModel):
    name: Name
    display_name: str | None = None  # Japanese, shown to operators and in reports
    display_name_en: str | None = None
    description: str | None = None
    labels: Labels = {}
    rule: Rule = "all"
    checks: list[str] = []  # check ids: "target/check"
    targets: list[Name] = []  # every check of these targets
    select: Selector | None = None


class Site(StrictModel):
    id: Name
    kind: SiteKind
    name: str | None = None  # default for prefectures: the prefecture's name
    name_en: str | None = None
    prefecture: PrefectureCode | None = None

    @model_validator(mode="after")
    def _needs_prefecture(self) -> Site:
        if self.kind in (SiteKind.PREFECTURE, SiteKind.MUNICIPALITY) and self.prefecture is None:
            raise ValueError(f"a {self.kind.value} site needs a prefecture")
        return self


class InventorySource(StrictModel):
    csv: Path  # relative to the config file


class DaemonConfig(StrictModel):
    listen: Listen = "127.0.0.1:9310"
    data_dir: Path = Path("data")
    max_concurrent_probes: int = Field(default=1000, ge=1, le=20000)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # the store on a PostgreSQL server instead of SQLite in data_dir: a libpq DSN or URI, as a secret reference
    # (${ENV_VAR} or {file: path}: it usually holds a password)
    postgresql: Secret | None = None
    # with postgresql: daemons sharing the store elect a leader; the lease runs out this long after the
    # leader's last renewal (a standby takes over within about this time)
    lease: Duration = Field(default=15.0, ge=3.0, le=300.0)
    http: HttpListenerConfig = HttpListenerConfig()  # connection caps and timeouts of the HTTP listener


class MonitoringConfig(StrictModel):
    """The monitoring side: what to probe and how; the response side is in response_model."""

    version: Literal[1] = 1
    daemon: DaemonConfig = DaemonConfig()
    defaults: Defaults = Defaults()
    modules: dict[Name, Module] = {}
    sites: list[Site] = []
    targets: list[TargetConfig] = []
    inventories: list[InventorySource] = []
    services: list[ServiceConfig] = []
    traps: TrapsConfig | None = None  # the SNMP trap/inform listener (off when absent)
    flows: FlowsConfig | None = None  # the NetFlow v9 / IPFIX collector (off when absent)


__all__ = ["Module", "MonitoringConfig"]
