"""`monitor probe`: run one check (or all checks of a target) once and print what happened, like
blackbox_exporter's debug output: the settings used, each phase, every measured value, the verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor.clock import SystemClock
from monitor.config.types import format_duration
from monitor.core.engine import verdict_of
from monitor.core.inventory import Check, Inventory
from monitor.scheduling.runner import ProbeRunner
from probes.base import ProbeResult
from probes.registry import close_probes, create_probes

MAX_SERIES_SHOWN = 60  # an SNMP device check can have thousands (48 interfaces x 20 series)


def _select(inventory: Inventory, wanted: str) -> list[Check]:
    if wanted in inventory.checks:
        return [inventory.checks[wanted]]
    return [inventory.checks[c] for c in inventory.checks_by_target.get(wanted, ())]


def _report(check: Check, result: ProbeResult) -> str:
    settings = check.settings.model_dump(mode="json", exclude_defaults=True)  # secrets print as **********
    lines = [
        f"check     {check.id}  (module {check.module}, kind {check.kind})",
        f"target    {check.target.address}" + (f"  hostname {check.target.hostname}" if check.target.hostname else ""),
        f"request   port={check.request.port} params={check.request.params} timeout={format_duration(check.timeout)}",
        f"settings  {json.dumps(settings, ensure_ascii=False)}",
        f"verdict   {verdict_of(result).upper()}"
        + (f": {result.error}" if result.error else "")
        + (f" ({result.degraded})" if result.degraded else ""),
        f"reached   {result.phase or '-'}",
        f"duration  {result.duration:.6f}s at {datetime.fromtimestamp(result.finished_at, UTC).isoformat()}",
    ]
    for phase, seconds in result.phases.items():
        lines.append(f"phase     {phase:<12} {seconds:.6f}s")
    for key, value in sorted(result.values.items()):
        lines.append(f"value     {key:<46} {value:g}")
    for key, text in sorted(result.info.items()):
        lines.append(f"info      {key:<20} {text}")
    for sample in result.series[:MAX_SERIES_SHOWN]:
        labels = ",".join(f'{k}="{v}"' for k, v in sample.labels)
        lines.append(f"series    {sample.name}{{{labels}}} {sample.value:.15g}")
    if len(result.series) > MAX_SERIES_SHOWN:
        lines.append(f"series    ... {len(result.series) - MAX_SERIES_SHOWN} more (--json shows all)")
    return "\n".join(lines)


async def probe_once(inventory: Inventory, wanted: str, as_json: bool = False) -> int:
    checks = _select(inventory, wanted)
    if not checks:
        print(f'no check or target named "{wanted}" (checks are named target/check)')
        return 2
    probes = create_probes()
    runner = ProbeRunner(probes, SystemClock())
    status = 0
    try:
        for check in checks:
            result = await runner.run(check)
            status |= 0 if result.ok else 1
            if as_json:
                print(
                    json.dumps(
                        {
                            "check": check.id,
                            "ok": result.ok,
                            "error": result.error,
                            "local": result.local,
                            "degraded": result.degraded,
                            "phase": result.phase or None,  # the phase reached; partial facts are in info
                            "duration_seconds": result.duration,
                            "phases": result.phases,
                            "values": result.values,
                            "info": result.info,
                            "series": [
                                {"name": x.name, "labels": dict(x.labels), "value": x.value, "type": x.type}
                                for x in result.series
                            ],
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                print(_report(check, result) + "\n")
    finally:
        await close_probes(probes)
    return status
