"""Config files for each scenario: the daemon's YAML, and blackbox_exporter + Prometheus for the peer.

A scenario probes the first `tcp` farm addresses with a TCP connect and the first `http` with an
HTTP GET (2xx), every 10 s with a 5 s timeout, for both contenders. Target i is `address(i)`; its
TCP check goes to the TCP farm's port and its HTTP check to the HTTP farm's port. In the daemon's
config each target lists its checks with the `modules:` shorthand and the ports are the modules'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import flow_load
from bench.farm import address

INTERVAL_S = 10
INTERVAL = f"{INTERVAL_S}s"
TIMEOUT = "5s"
DAEMON_SCRAPE_INTERVAL = "15s"
QUERY_NAME = "bench.example.jp"


@dataclass(frozen=True)
class Scenario:
    name: str
    tcp: int  # checks with a TCP connect
    http: int  # checks with an HTTP GET
    icmp: int = 0  # checks with one ICMP echo (the kernel answers on loopback: no farm needed)
    dns: int = 0  # checks with one DNS query over UDP (A record of QUERY_NAME)
    shards: int = 1  # daemon processes splitting the checks (`monitor run --shard i/N`)
    flow_rate: float = 0.0  # flow records per second exported to the daemon meanwhile (bench.flow_load)

    @property
    def checks(self) -> int:
        return self.tcp + self.http + self.icmp + self.dns

    @property
    def kinds(self) -> dict[str, int]:
        """Checks per module (tcp, http, icmp, dns), the ones with none left out."""
        counts = {"tcp": self.tcp, "http": self.http, "icmp": self.icmp, "dns": self.dns}
        return {kind: n for kind, n in counts.items() if n}

    @property
    def expected_rate(self) -> float:
        """Probes per second the schedule asks for."""
        return self.checks / INTERVAL_S


@dataclass(frozen=True)
class FarmPorts:
    tcp: int
    http: int
    dns: int


def _dump(data: Any, path: Path) -> Path:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's is ~10x faster at 10,000 targets
    path.write_text(yaml.dump(data, Dumper=dumper, sort_keys=False, width=200), encoding="utf-8")
    return path


def daemon_config(scenario: Scenario, ports: FarmPorts, path: Path, flow_port: int = 0) -> Path:
    targets: list[dict[str, Any]] = []
    for index in range(max(scenario.kinds.values())):
        modules = [kind for kind, n in scenario.kinds.items() if index < n]
        targets.append({"name": f"t{index:05d}", "address": address(index), "modules": modules})
    config: dict[str, Any] = {
        "daemon": {"max_concurrent_probes": 1000, "log_level": "warning"},
        "defaults": {"interval": INTERVAL, "timeout": TIMEOUT},
        "modules": {
            "tcp": {"kind": "tcp", "tcp": {"port": ports.tcp}},
            "http": {"kind": "http", "http": {"port": ports.http, "path": "/"}},
            "icmp": {"kind": "icmp", "icmp": {"count": 1}},  # one echo, as blackbox_exporter sends
            "dns": {"kind": "dns", "dns": {"port": ports.dns, "query_name": QUERY_NAME, "min_answers": 1}},
        },
        "targets": targets,
    }
    if scenario.flow_rate:
        config.update(flow_load.daemon_sections(flow_port, path.parent))
        config["modules"]["edge_snmp"] = flow_load.EDGE_MODULE
        targets.append(flow_load.edge_target())
    return _dump(config, path)


def blackbox_config(path: Path) -> Path:
    config = {
        "modules": {
            "tcp_connect": {"prober": "tcp", "timeout": TIMEOUT, "tcp": {"preferred_ip_protocol": "ip4"}},
            "icmp": {"prober": "icmp", "timeout": TIMEOUT, "icmp": {"preferred_ip_protocol": "ip4"}},
            "dns_a": {
                "prober": "dns",
                "timeout": TIMEOUT,
                "dns": {
                    "preferred_ip_protocol": "ip4",
                    "transport_protocol": "udp",
                    "query_name": QUERY_NAME,
                    "query_type": "A",
                    "valid_rcodes": ["NOERROR"],
                    "validate_answer_rrs": {"fail_if_none_matches_regexp": [".*"]},  # at least one answer
                },
            },
            "http_2xx": {
                "prober": "http",
                "timeout": TIMEOUT,
                "http": {"preferred_ip_protocol": "ip4", "method": "GET"},
            },
        }
    }
    return _dump(config, path)


def _blackbox_job(name: str, module: str, targets: list[str], exporter: str) -> dict[str, Any]:
    return {
        "job_name": name,
        "metrics_path": "/probe",
        "params": {"module": [module]},
        "static_configs": [{"targets": targets}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": exporter},
        ],
    }


def peer_prometheus_config(scenario: Scenario, ports: FarmPorts, exporter: str, path: Path) -> Path:
    """Prometheus driving blackbox_exporter: one scrape = one probe, every 10 s per target."""
    jobs = []
    if scenario.tcp:
        targets = [f"{address(i)}:{ports.tcp}" for i in range(scenario.tcp)]
        jobs.append(_blackbox_job("blackbox_tcp", "tcp_connect", targets, exporter))
    if scenario.http:
        targets = [f"http://{address(i)}:{ports.http}/" for i in range(scenario.http)]
        jobs.append(_blackbox_job("blackbox_http", "http_2xx", targets, exporter))
    if scenario.icmp:
        jobs.append(_blackbox_job("blackbox_icmp", "icmp", [address(i) for i in range(scenario.icmp)], exporter))
    if scenario.dns:
        targets = [f"{address(i)}:{ports.dns}" for i in range(scenario.dns)]
        jobs.append(_blackbox_job("blackbox_dns", "dns_a", targets, exporter))
    config = {
        "global": {"scrape_interval": INTERVAL, "scrape_timeout": TIMEOUT, "evaluation_interval": "1m"},
        "scrape_configs": jobs,
    }
    return _dump(config, path)


def daemon_prometheus_config(daemons: list[str], path: Path) -> Path:
    """Prometheus keeping the daemon's results: scrapes its /metrics (each shard's) every 15 s."""
    config = {
        "global": {"scrape_interval": DAEMON_SCRAPE_INTERVAL, "scrape_timeout": "10s", "evaluation_interval": "1m"},
        "scrape_configs": [{"job_name": "monitor", "static_configs": [{"targets": daemons}]}],
    }
    return _dump(config, path)
