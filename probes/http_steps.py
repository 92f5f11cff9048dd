"""HTTP transactions (`steps:`) and the response assertions blackbox_exporter users ask for.

The models of a step, of a header assertion (`fail_if_header_matches` / `fail_if_header_not_matches`,
blackbox_exporter's shape) and of a JSON body assertion (`fail_if_json_not_matches`: a JMESPath and a
value or a regexp), and the pure functions that judge a response by them, extract values into
variables and substitute `${name}` into a later step's url, headers and body. The HTTP itself is
probes/http.py's (this module does no I/O and does not import it: no cycle).

JMESPath (the `jmespath` library, AWS's, the language of `aws --query` and Ansible's json_query): one
specified language with one reference implementation, where JSONPath has many dialects that disagree
on filters. A path is written as JMESPath (`status`, `data.items[0].id`), and reasons quote it as written.

Variables come from the module's `secrets:` (references only: `${ENV_VAR}` or `{file: path}`, resolved
by probes/secret.py when the config loads) and from earlier steps' `extract:`. A step that uses a name
no secret or earlier step defines is a config error. The values of secrets never appear in a reason:
`redact` masks them in whatever text a failure quotes (a URL in an aiohttp error, a header value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import AfterValidator, Field, model_validator

from probes.base import ProbeSettings, Regex

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
MASK = "***"
_SHOWN = 80  # characters of a value a reason quotes


def _valid_jmespath(expression: str) -> str:
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        # its text goes on to quote the expression on more lines, with a caret: one line in a config error
        why = str(exc).split("\n", 1)[0].removesuffix(":").removesuffix(", for expression")
        raise ValueError(f'invalid JMESPath expression "{expression}": {why}') from None
    return expression


JMESPath = Annotated[str, AfterValidator(_valid_jmespath)]  # checked when the config loads


@lru_cache(maxsize=1024)
def compiled(expression: str) -> ParsedResult:
    """The same few paths are evaluated every probe: parse each once."""
    return jmespath.compile(expression)


class HeaderAssertion(ProbeSettings):
    """blackbox_exporter's: a response header and a regexp; a missing header fails unless allow_missing."""

    header: str = Field(min_length=1)
    regexp: Regex
    allow_missing: bool = False


class JSONAssertion(ProbeSettings):
    """The JSON body's value at `path` equals `value` (YAML's types: 'OK', 200, true, null), or its text
    (a string as it is, anything else as JSON) matches `regexp`."""

    path: JMESPath
    value: Any = None
    regexp: Regex | None = None

    @model_validator(mode="after")
    def _one_expectation(self) -> JSONAssertion:
        if ("value" in self.model_fields_set) == (self.regexp is not None):
            raise ValueError("give a JSON assertion either value or regexp")
        return self


class Extract(ProbeSettings):
    """Where a variable's value comes from: `json: PATH` (the JSON body), `header: NAME`, or `regexp:`
    (its first group, else the whole match) on that header's value or, without `header`, on the body."""

    json_path: JMESPath | None = Field(default=None, alias="json")
    header: str | None = None
    regexp: Regex | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Extract:
        if self.json_path is not None and (self.header is not None or self.regexp is not None):
            raise ValueError("extract from json, or from a header and/or a regexp, not both")
        if self.json_path is None and self.header is None and self.regexp is None:
            raise ValueError("extract needs json, header or regexp")
        return self

    @property
    def needs_body(self) -> bool:
        return self.header is None

    def describe(self) -> str:
        if self.json_path is not None:
            return f"json {self.json_path}"
        if self.header is None:
            return f"body /{self.regexp}/"
        return f"header {self.header}" + (f" /{self.regexp}/" if self.regexp is not None else "")


class Step(ProbeSettings):
    """One request of a transaction, with its own expectations and the variables it extracts."""

    name: str = Field(min_length=1, max_length=64)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str = Field(min_length=1)  # absolute, or relative to the target's URL (scheme, host, port, path)
    headers: dict[str, str] = {}
    body: str | dict[str, Any] | list[Any] | None = None  # text as it is; a mapping or list is sent as JSON
    valid_status_codes: list[int] = []  # empty: any 2xx
    fail_if_body_matches_regexp: list[Regex] = []
    fail_if_body_not_matches_regexp: list[Regex] = []
    fail_if_header_matches: list[HeaderAssertion] = []
    fail_if_header_not_matches: list[HeaderAssertion] = []
    fail_if_json_not_matches: list[JSONAssertion] = []
    extract: dict[VariableName, Extract] = {}

    @cached_property
    def keeps_body(self) -> bool:
        return bool(
            self.fail_if_body_matches_regexp
            or self.fail_if_body_not_matches_regexp
            or self.fail_if_json_not_matches
            or any(e.needs_body for e in self.extract.values())
        )

    @cached_property
    def references(self) -> frozenset[str]:
        """The variables this step uses, in its url, header values and body."""
        return frozenset(VARIABLE.findall(" ".join(_texts([self.url, *self.headers.values(), self.body]))))


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def check_variables(steps: list[Step], defined: Iterable[str]) -> None:
    """Raises ValueError (a config error) for a variable a step uses before anything defines it, or two
    steps with one name (the name is the `step` label of the per-step series)."""
    known = set(defined)
    names: set[str] = set()
    for number, step in enumerate(steps, 1):
        if step.name in names:
            raise ValueError(f"two steps are named '{step.name}': a step's name labels its series")
        names.add(step.name)
        unknown = sorted(step.references - known)
        if unknown:
            raise ValueError(
                f"step {number} '{step.name}' uses ${{{unknown[0]}}}, which neither `secrets` nor an earlier"
                " step's `extract` defines"
            )
        known |= step.extract.keys()


class UnknownVariable(Exception):
    """A `${name}` with no value (only reachable when the config check was bypassed)."""


def substitute(text: str, variables: Mapping[str, str]) -> str:
    if "${" not in text:
        return text

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise UnknownVariable(name)
        return variables[name]

    return VARIABLE.sub(value, text)


def substitute_json(value: Any, variables: Mapping[str, str]) -> Any:
    """A JSON body with `${name}` substituted in its strings (a variable's value is a string)."""
    if isinstance(value, str):
        return substitute(value, variables)
    if isinstance(value, dict):
        return {k: substitute_json(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_json(v, variables) for v in value]
    return value


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def show(value: Any) -> str:
    """A JSON value as a reason quotes it: a string in single quotes, anything else as JSON; cut short."""
    text = f"'{value}'" if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class Document:
    """A body decoded as JSON once, on first use, for all the assertions and extracts that need it."""

    __slots__ = ("_body", "_decoded", "_value")

    def __init__(self, body: bytes | bytearray) -> None:
        self._body = body
        self._decoded = False
        self._value: Any = None

    def value(self) -> Any:
        """The decoded body; raises ValueError when it is not JSON."""
        if not self._decoded:
            self._value = json.loads(self._body)  # bytes: UTF-8/16/32 detected as RFC 8259 allows
            self._decoded = True
        return self._value


HeaderGetter = Callable[[str], str | None]  # a response header's value by name (any case), None if absent


def check_headers(
    header: HeaderGetter, matches: list[HeaderAssertion], not_matches: list[HeaderAssertion]
) -> str | None:
    """Why the headers fail blackbox_exporter's fail_if_header_matches / _not_matches, or None."""
    for wanted, fail_on_match in ((matches, True), (not_matches, False)):
        for assertion in wanted:
            value = header(assertion.header)
            if value is None:
                if assertion.allow_missing:
                    continue
                return f"header {assertion.header} missing"
            found = re.search(assertion.regexp, value) is not None
            if found and fail_on_match:
                return f"header {assertion.header} matches /{assertion.regexp}/"
            if not found and not fail_on_match:
                return f"header {assertion.header} does not match /{assertion.regexp}/"
    return None


def _same(found: Any, wanted: Any) -> bool:
    # JSON's true is not 1: Python's bool is an int, so the types are compared too
    return bool(found == wanted and isinstance(found, bool) == isinstance(wanted, bool))


def check_json(document: Document, assertions: list[JSONAssertion]) -> str | None:
    """Why the JSON body fails its assertions ("status is 'NG', expected 'OK'"), or None."""
    try:
        doc = document.value()
    except ValueError:
        return "body is not JSON"
    for assertion in assertions:
        found = compiled(assertion.path).search(doc)
        if assertion.regexp is not None:
            if found is None:
                return f"{assertion.path} is missing, expected to match /{assertion.regexp}/"
            text = found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)
            if re.search(assertion.regexp, text) is None:
                return f"{assertion.path} is {show(found)}, expected to match /{assertion.regexp}/"
        elif not _same(found, assertion.value):
            if found is None:  # JMESPath gives null for a missing key
                return f"{assertion.path} is missing, expected {show(assertion.value)}"
            return f"{assertion.path} is {show(found)}, expected {show(assertion.value)}"
    return None


def extract(source: Extract, header: HeaderGetter, body: bytes | bytearray, document: Document) -> str | None:
    """The value `source` names in a response (a string: it goes into urls, headers and bodies), or
    None when the response does not have it."""
    if source.json_path is not None:
        try:
            found = compiled(source.json_path).search(document.value())
        except ValueError:
            return None
        if found is None:
            return None
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)
    if source.header is not None:
        text = header(source.header)
        if text is None or source.regexp is None:
            return text
    else:
        text = bytes(body).decode("utf-8", "replace")
    match = re.search(source.regexp or "", text)  # the model requires json, header or regexp: here a regexp
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)
