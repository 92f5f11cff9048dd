"""Load a config file (YAML plus the CSV inventories it names) into a validated inventory.

Every problem found is reported, not just the first, each with file, line and path; nothing is
half-loaded: either the whole config is valid or ConfigError is raised and the caller keeps
whatever it ran before.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.config.errors import ConfigError, Issue, issues_from_validation, render
from monitor.config.schema import Config
from monitor.config.sources import (
    MAX_TARGETS,
    SourceError,
    SourceMap,
    UnreadableError,
    load_csv_targets,
    load_yaml,
)
from monitor.core.inventory import Inventory, resolve


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    config: Config
    inventory: Inventory


def _add_csv_targets(data: dict[str, Any], base_dir: Path, sources: SourceMap) -> list[str]:
    errors: list[str] = []
    targets = data.get("targets")
    if targets is None:
        targets = data["targets"] = []
    sources_list = data.get("inventories") or []
    if not isinstance(targets, list) or not isinstance(sources_list, list):
        return errors  # the schema check reports the wrong shape
    if len(targets) > MAX_TARGETS:
        return [f"{sources.locate(('targets', MAX_TARGETS))}: more than {MAX_TARGETS:,} targets"]
    for i, item in enumerate(sources_list):
        if isinstance(item, dict) and isinstance(item.get("csv"), str):
            try:
                targets.extend(load_csv_targets(base_dir / item["csv"], sources, len(targets)))
            except UnreadableError as exc:  # no line in that file: blame the line that names it
                errors.append(f"{sources.locate(('inventories', i, 'csv'))}: inventories[{i}].csv: {exc}")
            except SourceError as exc:
                errors.append(str(exc))
    return errors


def load_config(path: str | Path) -> LoadedConfig:
    """The validated config, or ConfigError with one file:line message per problem; never anything else
    (check-config and a reload must answer, whatever the file holds)."""
    path = Path(path)
    try:
        return _load(path)
    except ConfigError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise ConfigError([f"{path}:1: too complex to check ({type(exc).__name__})"]) from None
    except Exception as exc:  # a validator's bug must still be an answer naming the file, not a traceback
        raise ConfigError([f"{path}:1: cannot check this config: {type(exc).__name__}: {exc}"[:500]]) from None


def _load(path: Path) -> LoadedConfig:
    sources = SourceMap()
    try:
        data = load_yaml(path, sources)
    except SourceError as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the config must be a mapping (key: value lines) at the top level"])
    csv_errors = _add_csv_targets(data, path.parent, sources)
    if csv_errors:
        raise ConfigError(csv_errors)
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise ConfigError(render(issues_from_validation(exc, Config), data, sources, str(path))) from None
    inventory, issues = resolve(config)
    if issues:
        raise ConfigError(render(issues, data, sources, str(path)))
    if not config.daemon.data_dir.is_absolute():
        daemon = config.daemon.model_copy(update={"data_dir": path.parent / config.daemon.data_dir})
        inventory = replace(inventory, daemon=daemon)
    return LoadedConfig(path, config, inventory)


__all__ = ["ConfigError", "Issue", "LoadedConfig", "load_config"]
