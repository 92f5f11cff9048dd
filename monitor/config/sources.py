"""Reading config files while remembering where every value came from (file and line).

YAML is composed into nodes and built by hand so each path (``("targets", 3, "address")``) keeps
its line, duplicate keys are errors (PyYAML silently keeps the last one), and CSV inventory rows
keep their file and row line. Error messages use these origins.
"""

from __future__ import annotations

import csv
import io
import math
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.config.types import printable

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


class UnreadableError(SourceError):
    """The file could not be read at all (missing, not a regular file, ...): the message has no line."""


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


# Limits on what a config file may make the loader do. A truncated or hostile file must fail fast
# with a file:line error and bounded memory, never take the checker or the daemon's reload down.
# Memory follows values, not bytes (~0.5 KB per YAML value, ~4 KB per resolved target), so these bound it:
# the worst file within them loads in about 400 MB; the largest estate benchmarked has 20,000 checks.
MAX_FILE_BYTES = 16 * 1024 * 1024  # a 20,000-target YAML inventory is ~2 MB, its CSV ~0.7 MB
MAX_VALUES = 400_000  # scalars, mappings and lists in one YAML file (20,000 targets in YAML: ~360,000)
MAX_TARGETS = 50_000  # in YAML and CSV together
MAX_DEPTH = 64  # nesting of mappings and lists; the schema needs < 10 (libyaml's composer recurses in C)
MAX_ALIAS_VALUES = 100_000  # values that aliases (and << merges) may add in all: stops "billion laughs"
MAX_INT_DIGITS = 20  # a 64-bit number has at most 20 digits
INT_RANGE = (-(2**63), 2**64 - 1)
MAX_CSV_FIELD = 8192  # characters in one CSV cell (a description is a few hundred)
# Characters YAML forbids (C0 controls but tab/LF/CR, DEL, C1 but NEL, non-characters); also refused in CSV.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_INT_TAG = "tag:yaml.org,2002:int"


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def key_text(key: str) -> str:
    """A mapping key as an error names it: quoted when it is blank or has spaces at either end, which a
    bare key would leave invisible (`file:1:  : number too large`)."""
    return f'"{key}"' if not key or key != key.strip() else key


def _loc_text(loc: Loc) -> str:
    """targets[3].address: the path in the data, for errors found before the schema check."""
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key_text(key)}" if out else key_text(str(key)))
    return out


def read_limited(path: Path) -> bytes:
    """The file's bytes; refuses a file larger than MAX_FILE_BYTES without reading all of it."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block, /dev/zero never end
            raise UnreadableError(f"{path}: not a regular file")
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL in the file name
        raise UnreadableError(f"{printable(str(path), 200)}: cannot read: {exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise SourceError(f"{path}:1: file larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    return raw


def _refuse_control_characters(text: str, path: Path) -> None:
    bad = _CONTROL.search(text)
    if bad is not None:
        name = "NUL" if bad.group() == "\x00" else f"U+{ord(bad.group()):04X}"
        raise SourceError(f"{path}:{_line_of(text, bad.start())}: control character {name} is not allowed")


def _check_shape(text: str, path: Path) -> int:
    """Walk the parser's events (flat, no recursion, nothing kept) so a 100,000-deep [[[...]]] is refused
    before the composer recurses into it (libyaml's composer overflows the C stack there), and a file of
    millions of tiny values before they are built. Returns how many aliases the file has."""
    loader: Any = _Loader(text)
    depth = values = aliases = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.NodeEvent):
                values += 1
                aliases += isinstance(event, yaml.AliasEvent)
                if values > MAX_VALUES:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    raise SourceError(f"{path}:{line}: more than {MAX_VALUES:,} values in one file")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 0
                    raise SourceError(f"{path}:{line}: nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()
    return aliases


def _check_aliases(root: yaml.Node, path: Path) -> None:
    """Refuse a document whose aliases would expand to more than MAX_ALIAS_VALUES values.

    The composed graph shares aliased nodes, so it is as small as the file; only building plain data
    from it (or flattening << merges) multiplies them. Expanded sizes are computed once per node."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # while in progress (a node cannot contain itself, but never loop)
        total = 1 + sum(size(child) for child in _children(node))
        sizes[id(node)] = total
        return total

    seen: set[int] = set()
    open_nodes: set[int] = set()  # the path from the root to here
    added = 0

    def walk(node: yaml.Node, line: int) -> None:
        nonlocal added
        if id(node) in open_nodes:  # `x: &x [*x]`: libyaml composes the cycle, building it never ends
            raise SourceError(f"{path}:{line}: an alias refers to a node that contains it (a recursive anchor)")
        if id(node) in seen:  # an alias (or a merge) of a node already built once: its copy costs its size
            added += size(node)
            if added > MAX_ALIAS_VALUES:
                raise SourceError(
                    f"{path}:{line}: aliases expand to more than {MAX_ALIAS_VALUES:,} values (an alias bomb?)"
                )
            return
        seen.add(id(node))
        open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key, key.start_mark.line + 1)
                walk(value, key.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item, node.start_mark.line + 1 if id(item) in seen else item.start_mark.line + 1)
        open_nodes.discard(id(node))

    walk(root, root.start_mark.line + 1)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(path: Path, sources: SourceMap, prefix: Loc = ()) -> Any:
    raw = read_limited(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SourceError(f"{path}:{line}: not UTF-8 text: {exc.reason}") from exc
    text = text.removeprefix("\ufeff")
    _refuse_control_characters(text, path)
    loader: Any = None
    try:
        aliases = _check_shape(text, path)
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise SourceError(f"{path}:1: the file is empty (nothing but blank lines and comments)")
        if aliases:  # without one, nothing is shared: no bomb, no cycle
            _check_aliases(node, path)
        return _build(loader, node, path, prefix, sources)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise SourceError(f"{path}:{line}: YAML syntax error: {exc.problem or exc.context}") from exc
    except yaml.reader.ReaderError as exc:
        raise SourceError(f"{path}:{_line_of(text, exc.position)}: YAML: {exc.reason}") from exc
    except yaml.YAMLError as exc:  # any other parser complaint: still an answer, not a traceback
        raise SourceError(f"{path}:1: YAML error: {exc}") from exc
    finally:
        if loader is not None:
            loader.dispose()


def _build(loader: Any, node: yaml.Node, path: Path, loc: Loc, sources: SourceMap) -> Any:
    sources.add(loc, Origin(path, node.start_mark.line + 1))
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(loader, key_node, path, loc) if isinstance(key_node, yaml.ScalarNode) else None
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
    return _scalar(loader, node, path, loc)


def _scalar(loader: Any, node: yaml.Node, path: Path, loc: Loc) -> Any:
    """One scalar, refusing numbers no setting can hold (Python would build a 5,000-digit int, and
    refuse to print it) and whatever the constructor cannot make sense of."""
    if node.tag == _INT_TAG and len(node.value) > MAX_INT_DIGITS + 4:  # room for a sign, 0x, _ separators
        raise _scalar_error(node, path, loc, f"number too large ({len(node.value)} digits; at most {MAX_INT_DIGITS})")
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError:
        raise
    except Exception as exc:  # PyYAML's constructors fail on hostile scalars in many ways
        # (!!int abc: ValueError, 2026-13-45: ValueError, !!timestamp x: AttributeError, ...)
        raise _scalar_error(node, path, loc, f'cannot read "{printable(node.value, 40)}": {exc}') from exc
    kind = type(value)
    if kind is int and not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise _scalar_error(node, path, loc, "number too large (more than 64 bits)")
    if kind is float and not math.isfinite(value):
        raise _scalar_error(node, path, loc, f'"{printable(node.value, 40)}" is not a finite number')
    return value


def _scalar_error(node: yaml.Node, path: Path, loc: Loc, message: str) -> SourceError:
    return SourceError(f"{path}:{node.start_mark.line + 1}: {_loc_text(loc) + ': ' if loc else ''}{message}")


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
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    try:
        return raw.decode("cp932")
    except UnicodeDecodeError:
        line = raw.count(b"\n", 0, first_bad) + 1  # where it stopped being UTF-8
        raise SourceError(f"{path}:{line}: neither UTF-8 nor Shift_JIS (cp932) text") from None


def load_csv_targets(path: Path, sources: SourceMap, first_index: int) -> list[dict[str, Any]]:
    """Rows of an inventory CSV as target mappings, registered in `sources` as targets[first_index...]."""
    text = _decode(read_limited(path), path)
    _refuse_control_characters(text, path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _csv_rows(reader, path, sources, first_index)
    except csv.Error as exc:  # an unterminated quote, a field over the csv module's own limit, ...
        line = reader.reader.line_num  # DictReader's own line_num lags behind on a failed row
        raise SourceError(f"{path}:{line}: CSV: {exc}") from exc


def _csv_rows(reader: csv.DictReader[str], path: Path, sources: SourceMap, first_index: int) -> list[dict[str, Any]]:
    columns = [c.strip() for c in reader.fieldnames or []]
    for column in columns:
        if column not in CSV_FIELDS and column not in CSV_LABELS and not column.startswith("label."):
            known = ", ".join((*CSV_FIELDS, *CSV_LABELS, "label.<name>"))
            raise SourceError(f'{path}:1: unknown column "{column[:64]}" (columns: {known})')
    if "name" not in columns or "address" not in columns:
        raise SourceError(f"{path}:1: the columns name and address are required")
    targets: list[dict[str, Any]] = []
    line = 1
    for row in reader:
        row_line = line + 1
        line = reader.line_num
        if first_index + len(targets) >= MAX_TARGETS:
            raise SourceError(f"{path}:{row_line}: more than {MAX_TARGETS:,} targets (YAML and CSV together)")
        extra: Any = row.get(None)  # cells beyond the header columns
        if extra and any(cell.strip() for cell in extra):  # (empty ones are a spreadsheet's trailing commas)
            raise SourceError(f"{path}:{row_line}: more cells than the {len(columns)} columns of the header")
        cells = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        for column, value in cells.items():
            if len(value) > MAX_CSV_FIELD:
                size = f"{len(value):,} characters; at most {MAX_CSV_FIELD:,}"
                raise SourceError(f"{path}:{row_line}: {column}: value too long ({size})")
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
