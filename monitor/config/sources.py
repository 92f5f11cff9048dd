"""Reading config files while remembering where every value came from (file and line).

YAML is composed into nodes and built by hand so each path (``("targets", 3, "address")``) keeps
its line, duplicate keys are errors (PyYAML silently keeps the last one), and CSV inventory rows
keep their file and row line. Error messages use these origins.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it: ten times faster on a large inventory
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Origin:
    file: Path
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class SourceError(Exception):
    """A file could not be read or parsed at all; the message names file and line."""


class SourceMap:
    """Where each path of the loaded data came from."""

    def __init__(self) -> None:
        self._origins: dict[Loc, Origin] = {}

    def add(self, loc: Loc, origin: Origin) -> None:
        self._origins[loc] = origin

    def locate(self, loc: Loc) -> Origin | None:
        """The origin of `loc`, or of its nearest recorded ancestor."""
        for end in range(len(loc), -1, -1):
            origin = self._origins.get(loc[:end])
            if origin is not None:
                return origin
        return None


def load_yaml(path: Path, sources: SourceMap, prefix: Loc = ()) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not UTF-8 text: {exc.reason}") from exc
    loader: Any = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        return _build(loader, node, path, prefix, sources)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise SourceError(f"{path}:{line}: YAML syntax error: {exc.problem or exc.context}") from exc
    finally:
        loader.dispose()


def _build(loader: Any, node: yaml.Node, path: Path, loc: Loc, sources: SourceMap) -> Any:
    sources.add(loc, Origin(path, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise SourceError(f"{path}:{key_node.start_mark.line + 1}: keys must be plain text")
            if key in result:
                first = sources.locate((*loc, key))
                raise SourceError(
                    f'{path}:{key_node.start_mark.line + 1}: duplicate key "{key}" (first at line '
                    f"{first.line if first else '?'})"
                )
            result[key] = _build(loader, value_node, path, (*loc, key), sources)
            sources.add((*loc, key), Origin(path, key_node.start_mark.line + 1))
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path, (*loc, i), sources) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


# CSV inventory columns: target fields, standard labels, and label.<name> for any other label.
CSV_FIELDS = (
    "name",
    "address",
    "hostname",
    "description",
    "site",
    "parent",
    "modules",
    "service",
    "service_rule",
)
CSV_LABELS = ("tier", "prefecture", "system", "role")


def _decode(raw: bytes, path: Path) -> str:
    """NOC spreadsheets are exported as UTF-8 (often with a BOM) or as Shift_JIS (cp932)."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SourceError(f"{path}: neither UTF-8 nor Shift_JIS (cp932) text")


def load_csv_targets(path: Path, sources: SourceMap, first_index: int) -> list[dict[str, Any]]:
    """Rows of an inventory CSV as target mappings, registered in `sources` as targets[first_index...]."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror}") from exc
    reader = csv.DictReader(io.StringIO(_decode(raw, path), newline=""))
    columns = [c.strip() for c in reader.fieldnames or []]
    for column in columns:
        if column not in CSV_FIELDS and column not in CSV_LABELS and not column.startswith("label."):
            known = ", ".join((*CSV_FIELDS, *CSV_LABELS, "label.<name>"))
            raise SourceError(f'{path}:1: unknown column "{column}" (columns: {known})')
    if "name" not in columns or "address" not in columns:
        raise SourceError(f"{path}:1: the columns name and address are required")
    targets: list[dict[str, Any]] = []
    line = 1
    for row in reader:
        row_line = line + 1
        line = reader.line_num
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(cells.values()) or cells.get("name", "").startswith("#"):
            continue
        target: dict[str, Any] = {}
        labels: dict[str, str] = {}
        for column, value in cells.items():
            if not value:
                continue
            if column == "modules":
                target["modules"] = [m.strip() for m in value.replace(",", ";").split(";") if m.strip()]
            elif column in CSV_LABELS:
                labels[column] = value
            elif column.startswith("label."):
                labels[column.removeprefix("label.")] = value
            else:
                target[column] = value
        if labels:
            target["labels"] = labels
        sources.add(("targets", first_index + len(targets)), Origin(path, row_line))
        targets.append(target)
    return targets
