"""The validated config resolved into what the daemon runs: targets, checks, services, topology.

Cross references are checked here (unknown module, parent, site or check; parent cycles; services
that match nothing), each reported at the path of the item at fault so the error names the file
and line. Defaults are applied here once: check > module > defaults, field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.config.capacity_check import check_capacity
from monitor.config.capacity_model import CapacityConfig
from monitor.config.errors import Issue
from monitor.config.flows import FlowsConfig
from monitor.config.model import AtLeast, CheckConfig, DaemonConfig, ServiceConfig, Site, Thresholds
from monitor.config.reports_model import ReportsConfig, check_reports
from monitor.config.response_check import check_response, check_security, check_slo, check_status
from monitor.config.response_model import ResponseConfig
from monitor.config.schema import Config
from monitor.config.security_model import SecurityConfig
from monitor.config.slo_model import SLOConfig
from monitor.config.sources import Loc
from monitor.config.status_model import NoticePolicy, Recovery, StatusPage
from monitor.config.traps import TrapsConfig
from monitor.config.types import format_duration, prefecture_code
from monitor.core.services import Rule
from monitor.core.state import StatePolicy
from probes.base import ProbeRequest, ProbeSettings

# Default tier of a target from the kind of its site.
_SITE_TIER = {
    "national_center": "national",
    "prefecture": "prefecture",
    "aggregation_center": "aggregation",
    "lgwan_access_point": "lgwan",
    "municipality": "municipality",
    "asp": "asp",
}
# Labels every per-check metric carries (empty when unset), so dashboards can group by them.
METRIC_LABELS = ("tier", "prefecture", "system", "role", "site")


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    address: str
    hostname: str | None
    description: str | None
    site: str | None
    labels: Mapping[str, str]
    parent: str | None


@dataclass(frozen=True, slots=True)
class Check:
    id: str  # "target/name"
    target: Target
    name: str
    module: str
    kind: str
    settings: ProbeSettings
    request: ProbeRequest
    interval: float
    retry_interval: float
    timeout: float
    policy: StatePolicy
    degraded: Thresholds
    reachability: bool  # its result decides whether the target (and so its children) is reachable
    exported: bool = True  # False: probed by this shard only to know reachability (another shard owns it)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    display_name: str
    display_name_en: str
    description: str | None
    labels: Mapping[str, str]
    rule: Rule
    check_ids: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    daemon: DaemonConfig
    sites: Mapping[str, Site]
    targets: Mapping[str, Target]
    checks: Mapping[str, Check]
    services: Mapping[str, Service]
    module_limits: Mapping[str, int]
    checks_by_target: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    services_by_check: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    response: ResponseConfig = field(default_factory=ResponseConfig)
    slo: SLOConfig = field(default_factory=SLOConfig)
    traps: TrapsConfig | None = None
    flows: FlowsConfig | None = None  # the flow collector (off when absent)
    security: SecurityConfig | None = None
    status_page: StatusPage | None = None
    notices: NoticePolicy = field(default_factory=NoticePolicy)
    recovery: Recovery = field(default_factory=Recovery)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)  # circuits measured (availability/circuits.py)
    reports: ReportsConfig = field(default_factory=ReportsConfig)  # the approved report's distribution
    shard: tuple[int, int] = (1, 1)  # this daemon's share of the estate (--shard i/N)
    context: frozenset[str] = frozenset()  # other shards' targets, probed here only for root cause
    # A shard's part keeps the whole configured estate: a name in the config (a flow allow-list's "to: juki-net")
    # means the same on every shard, wherever that target is probed. None: this is the whole estate.
    whole: Inventory | None = field(default=None, compare=False, repr=False)

    @property
    def estate(self) -> Inventory:
        """The whole configured estate, which names in the config are resolved against."""
        return self.whole or self


def reachability_checks(inventory: Inventory, target: str) -> tuple[str, ...]:
    """The checks whose results decide whether a target is reachable: those marked `reachability`, or all
    of its checks when none is."""
    ids = inventory.checks_by_target.get(target, ())
    return tuple(i for i in ids if inventory.checks[i].reachability) or ids


def _merge_thresholds(*layers: Thresholds | None) -> Thresholds:
    values: dict[str, Any] = {}
    for layer in layers:
        if layer is not None:
            values.update({k: v for k, v in layer.model_dump().items() if v is not None})
    return Thresholds(**values)


class _Resolver:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.issues: list[Issue] = []
        self.sites: dict[str, Site] = {}
        self.targets: dict[str, Target] = {}
        self.checks: dict[str, Check] = {}
        self.checks_by_target: dict[str, list[str]] = {}
        self.target_index: dict[str, int] = {}

    def issue(self, loc: Loc, message: str) -> None:
        self.issues.append(Issue(loc, message))

    def resolve(self) -> Inventory:
        self._sites()
        self._targets()
        self._topology()
        services = self._services()
        children: dict[str, list[str]] = {}
        for target in self.targets.values():
            if target.parent:
                children.setdefault(target.parent, []).append(target.name)
        services_by_check: dict[str, list[str]] = {}
        for service in services.values():
            for check_id in service.check_ids:
                services_by_check.setdefault(check_id, []).append(service.name)
        limits = {name: m.max_concurrency for name, m in self.config.modules.items() if m.max_concurrency}
        return Inventory(
            daemon=self.config.daemon,
            sites=self.sites,
            targets=self.targets,
            checks=self.checks,
            services=services,
            module_limits=limits,
            checks_by_target={k: tuple(v) for k, v in self.checks_by_target.items()},
            children={k: tuple(v) for k, v in children.items()},
            services_by_check={k: tuple(v) for k, v in services_by_check.items()},
            response=ResponseConfig(**{name: getattr(self.config, name) for name in ResponseConfig.model_fields}),
            slo=self.config.slo,
            traps=self.config.traps,
            flows=self.config.flows,
            security=self.config.security,
            status_page=self.config.status_page,
            notices=self.config.notices,
            recovery=self.config.recovery,
            capacity=self.config.capacity,
            reports=self.config.reports,
        )

    def _sites(self) -> None:
        for i, site in enumerate(self.config.sites):
            if site.id in self.sites:
                self.issue(("sites", i, "id"), f'duplicate site id "{site.id}"')
            self.sites[site.id] = site

    def _labels(self, i: int, site_id: str | None, labels: Mapping[str, str]) -> dict[str, str]:
        merged: dict[str, str] = {}
        if site_id is not None:
            site = self.sites.get(site_id)
            if site is None:
                self.issue(("targets", i, "site"), f'unknown site "{site_id}"')
            else:
                merged["tier"] = _SITE_TIER[site.kind.value]
                if site.prefecture:
                    merged["prefecture"] = site.prefecture
                merged["site"] = site.id
        merged.update(labels)
        return merged

    def _targets(self) -> None:
        for i, raw in enumerate(self.config.targets):
            if raw.name in self.targets:
                self.issue(("targets", i, "name"), f'duplicate target name "{raw.name}"')
                continue
            labels = self._labels(i, raw.site, {k: str(v) for k, v in raw.labels.items()})
            target = Target(raw.name, raw.address, raw.hostname, raw.description, raw.site, labels, raw.parent)
            self.targets[raw.name] = target
            self.target_index[raw.name] = i
            specs = [(("targets", i, "modules", j), CheckConfig(module=m)) for j, m in enumerate(raw.modules)]
            specs += [(("targets", i, "checks", j), c) for j, c in enumerate(raw.checks)]
            for loc, spec in specs:
                if spec.enabled:
                    self._check(loc, target, spec)

    def _check(self, loc: Loc, target: Target, spec: CheckConfig) -> None:
        module = self.config.modules.get(spec.module)
        if module is None:
            known = ", ".join(sorted(self.config.modules)) or "none defined"
            self.issue(loc, f'unknown module "{spec.module}" (modules: {known})')
            return
        name = spec.name or spec.module
        check_id = f"{target.name}/{name}"
        if check_id in self.checks:
            self.issue(loc, f'two checks named "{name}" on target "{target.name}": give one a name')
            return
        for param, kind in (("url", "http"), ("query_name", "dns"), ("interface", "snmp")):
            if getattr(spec, param) is not None and module.kind != kind:
                self.issue((*loc, param), f"{param} only applies to {kind} modules, not {module.kind}")
        if spec.port is not None and module.kind == "icmp":
            self.issue((*loc, "port"), "port does not apply to icmp modules")
        d = self.config.defaults

        def pick(attr: str) -> Any:
            for layer in (spec, module):
                value = getattr(layer, attr)
                if value is not None:
                    return value
            return getattr(d, attr)

        interval, timeout = pick("interval"), pick("timeout")
        if timeout > interval:
            self.issue(
                loc,
                f"timeout ({format_duration(timeout)}) must not be longer than interval ({format_duration(interval)})",
            )
        given = (("url", spec.url), ("query_name", spec.query_name), ("interface", spec.interface))
        params = {k: (str(v) if k == "interface" else v) for k, v in given if v is not None}
        reachability = spec.reachability if spec.reachability is not None else module.reachability
        self.checks[check_id] = Check(
            id=check_id,
            target=target,
            name=name,
            module=spec.module,
            kind=module.kind,
            settings=getattr(module, module.kind),
            request=ProbeRequest(target.address, target.hostname, spec.port, timeout, params, check_id),
            interval=interval,
            retry_interval=min(pick("retry_interval"), interval),
            timeout=timeout,
            policy=StatePolicy(pick("failures_to_down"), pick("successes_to_up"), d.flap_window, d.flap_transitions),
            degraded=_merge_thresholds(d.degraded, module.degraded, spec.degraded),
            reachability=reachability if reachability is not None else module.kind == "icmp",
        )
        self.checks_by_target.setdefault(target.name, []).append(check_id)

    def _topology(self) -> None:
        cycles_seen: set[frozenset[str]] = set()
        for name, target in self.targets.items():
            loc = ("targets", self.target_index[name], "parent")
            if target.parent is None:
                continue
            if target.parent not in self.targets:
                self.issue(loc, f'unknown parent "{target.parent}"')
                continue
            seen = [name]
            current: str | None = target.parent
            while current is not None and current in self.targets:
                if current in seen:
                    cycle = frozenset(seen[seen.index(current) :])
                    if cycle not in cycles_seen:  # one message per cycle, at its first target
                        cycles_seen.add(cycle)
                        self.issue(loc, "parent cycle: " + " -> ".join([*seen, current]))
                    break
                seen.append(current)
                current = self.targets[current].parent

    def _services(self) -> dict[str, Service]:
        declared: dict[str, tuple[Loc, ServiceConfig]] = {}
        for i, svc in enumerate(self.config.services):
            if svc.name in declared:
                self.issue(("services", i, "name"), f'duplicate service name "{svc.name}"')
            declared[svc.name] = (("services", i), svc)
        members: dict[str, list[str]] = {name: [] for name in declared}
        implicit: dict[str, tuple[Loc, Any, Target]] = {}
        for raw in self.config.targets:
            target = self.targets.get(raw.name)
            if raw.service is None or target is None:
                continue
            loc = ("targets", self.target_index[raw.name], "service")
            if raw.service not in declared:
                if raw.service_rule is None and raw.service not in implicit:
                    self.issue(
                        loc,
                        f'service "{raw.service}" is not declared under services; declare it there '
                        "or give service_rule",
                    )
                    continue
                first = implicit.setdefault(raw.service, (loc, raw.service_rule, target))
                if raw.service_rule is not None and raw.service_rule != first[1]:
                    self.issue(loc, f'service "{raw.service}" is given different rules by its targets')
                members.setdefault(raw.service, [])
            members[raw.service].extend(self._target_checks(target.name))
        services: dict[str, Service] = {}
        for name, (svc_loc, svc) in declared.items():
            issues_before = len(self.issues)
            ids = members[name] + self._service_members(svc_loc, svc)
            services[name] = self._service(svc_loc, name, svc.rule, ids, svc, quiet=len(self.issues) > issues_before)
        for name, (first_loc, rule, target) in implicit.items():
            labels = {k: v for k, v in target.labels.items() if k in ("tier", "prefecture", "system", "site")}
            services[name] = self._service(first_loc, name, rule, members[name], None, labels)
        return services

    def _target_checks(self, target: str) -> list[str]:
        return self.checks_by_target.get(target, [])

    def _service_members(self, loc: Loc, svc: ServiceConfig) -> list[str]:
        ids: list[str] = []
        for j, check_id in enumerate(svc.checks):
            if check_id in self.checks:
                ids.append(check_id)
            else:
                self.issue((*loc, "checks", j), f'unknown check "{check_id}" (checks are named target/check)')
        for j, target in enumerate(svc.targets):
            if target in self.targets:
                ids.extend(self._target_checks(target))
            else:
                self.issue((*loc, "targets", j), f'unknown target "{target}"')
        if svc.select is not None:
            sel = svc.select
            for j, module in enumerate(sel.modules):
                if module not in self.config.modules:
                    self.issue((*loc, "select", "modules", j), f'unknown module "{module}"')
            wanted = {k: {str(x) for x in (v if isinstance(v, list) else [v])} for k, v in sel.labels.items()}
            if "prefecture" in wanted:
                wanted["prefecture"] = {prefecture_code(p) for p in wanted["prefecture"]}
            matched = [
                c.id
                for c in self.checks.values()
                if all(c.target.labels.get(k) in vals for k, vals in wanted.items())
                and (not sel.modules or c.module in sel.modules)
                and (not sel.kinds or c.kind in sel.kinds)
            ]
            if not matched:
                self.issue((*loc, "select"), "matches no check")
            ids.extend(matched)
        return ids

    def _service(
        self,
        loc: Loc,
        name: str,
        rule: Any,
        ids: list[str],
        svc: ServiceConfig | None,
        labels: dict[str, str] | None = None,
        quiet: bool = False,  # a member problem was reported already: "no checks" would repeat it
    ) -> Service:
        unique = tuple(dict.fromkeys(ids))
        resolved: Rule = rule.at_least if isinstance(rule, AtLeast) else rule
        if not unique and not quiet:
            self.issue(loc, f'service "{name}" has no checks')
        elif isinstance(resolved, int) and resolved > len(unique):
            self.issue((*loc, "rule"), f"at_least {resolved} but the service has only {len(unique)} checks")
        return Service(
            name=name,
            display_name=(svc.display_name if svc and svc.display_name else name),
            display_name_en=(svc.display_name_en if svc and svc.display_name_en else name),
            description=svc.description if svc else None,
            labels={k: str(v) for k, v in (svc.labels.items() if svc else (labels or {}).items())},
            rule=resolved,
            check_ids=unique,
        )


def resolve(config: Config) -> tuple[Inventory, list[Issue]]:
    resolver = _Resolver(config)
    inventory = resolver.resolve()
    checks = inventory.checks
    issues = (
        resolver.issues
        + check_response(config, set(inventory.targets))
        + check_slo(config.slo, set(inventory.services))
        + check_security(config.security, config, inventory)
        + check_status(config, inventory)
        + check_capacity(config.capacity, {i: (c.kind, "interface" in c.request.params) for i, c in checks.items()})
        + check_reports(config, inventory)
    )
    return inventory, issues
