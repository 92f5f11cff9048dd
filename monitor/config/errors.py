"""Config errors in words an operator understands, each with file, line and path.

config/monitor.yml:42: targets[3] "tokyo-core-1": checks[0] "icmp": interval: invalid duration "5x" ...
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from monitor.config.sources import Loc, SourceMap, key_text
from monitor.config.types import printable

# Keys that name a list item, in the order they are tried.
_ITEM_NAMES = ("name", "id", "module")


@dataclass(frozen=True, slots=True)
class Issue:
    loc: Loc
    message: str


class ConfigError(Exception):
    """The config is invalid; `messages` has one line per problem, ordered by file and line."""

    def __init__(self, messages: list[str]) -> None:
        # one line each, safe on a terminal and in a log: values quoted in messages come from the file
        # (a newline in a name would split the line, ESC sequences recolour the operator's terminal)
        messages = [printable(m, 2000) if not m.isprintable() or len(m) > 2000 else m for m in messages]
        super().__init__("\n".join(messages))
        self.messages = messages


def describe_path(loc: Loc, data: Any) -> str:
    """`targets[3] "tokyo-core-1": checks[0] "icmp": interval` for a loc, using names found in data."""
    parts: list[str] = []
    current = ""
    node = data
    for key in loc:
        if key == "[key]":  # pydantic marks errors in a mapping's key this way; the key is already named
            continue
        if isinstance(key, int):
            current += f"[{key}]"
            node = node[key] if isinstance(node, list) and key < len(node) else None
            name = next((node[k] for k in _ITEM_NAMES if isinstance(node, dict) and k in node), None)
            if name is not None:
                parts.append(f'{current} "{name}"')
                current = ""
        else:
            current = f"{current}.{key_text(str(key))}" if current else key_text(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    if current:
        parts.append(current)
    return ": ".join(parts)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, Annotated, list and dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def allowed_keys(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model allows in the mapping at `loc` (for "unknown key" messages)."""
    models = [root]
    for key in loc:
        if isinstance(key, int):
            continue
        nested = [
            m for model in models if key in model.model_fields for m in _models_in(model.model_fields[key].annotation)
        ]
        if nested:  # otherwise `key` is a dict key (modules.<name>): same models one level down
            models = nested
    names: list[str] = []
    for model in models:
        names.extend(k for k in model.model_fields if k not in names)
    return names


def _message(error: ErrorDetails, root: type[BaseModel] | None) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        allowed = allowed_keys(root, loc[:-1]) if root else []
        hint = get_close_matches(str(loc[-1]), allowed, n=1)
        if hint:
            return f'unknown key (did you mean "{hint[0]}"?)'
        return f"unknown key (allowed here: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "required, but missing"
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f'must be one of {expected}, not "{value}"'
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        return (
            f'{str(ctx.get("discriminator", "kind")).strip(chr(39))} must be one of {expected}, not "{ctx.get("tag")}"'
        )
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f'must be a whole number, not "{value}"'
    if kind in ("float_parsing", "float_type"):
        return f'must be a number, not "{value}"'
    if kind in ("bool_parsing", "bool_type"):
        return f'must be true or false, not "{value}"'
    if kind in ("string_type",):
        return "must be text"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping (key: value lines)"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()))
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        return f"must be {words} {bound}, not {value}"
    if kind == "string_pattern_mismatch":
        return f'"{value}" is not a valid name (letters, digits, and . _ : - after the first character)'
    if kind in ("string_too_short", "string_too_long"):
        return str(error["msg"]).replace("String", "text")
    return str(error["msg"])


def issues_from_validation(exc: ValidationError, root: type[BaseModel] | None = None) -> list[Issue]:
    return [Issue(tuple(e["loc"]), _message(e, root)) for e in exc.errors()]


def render(issues: list[Issue], data: Any, sources: SourceMap, default_file: str) -> list[str]:
    lines: list[tuple[str, int, str]] = []
    for issue in issues:
        origin = sources.locate(issue.loc)
        where = (str(origin.file), origin.line) if origin else (default_file, 0)
        path = describe_path(issue.loc, data)
        if origin and origin.file.suffix.lower() == ".csv" and path.startswith("targets["):
            path = path.split(" ", 1)[1] if " " in path else path  # the line already names the row
        text = f"{path}: {issue.message}" if path else issue.message
        lines.append((where[0], where[1], text))
    lines.sort(key=lambda item: (item[0], item[1]))
    return [f"{file}:{line}: {text}" for file, line, text in dict.fromkeys(lines)]
