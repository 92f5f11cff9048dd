"""The loader's limits: hostile or broken bytes give file:line errors, fast and in bounded memory, never a
traceback (issue 24, points 3 to 5: alias bomb, NUL, huge numbers, oversized CSV cells, deep nesting)."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.config.loader import ConfigError, load_config
from monitor.config.sources import MAX_CSV_FIELD, MAX_FILE_BYTES, MAX_TARGETS, MAX_VALUES

INVALID = Path(__file__).parent / "invalid"
ROOT = Path(__file__).parents[2]
PING = "modules:\n  ping: {kind: icmp}\n"


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.messages


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# a child process on the shared 2-core CI machine: the interpreter alone may take seconds to start, so the
# 10 s budget per case is asserted in-process and the child gets this much for start-up plus the case
CHILD_SECONDS = 40.0


def check_config_limited(
    path: Path, memory_mb: int = 500, timeout: float = CHILD_SECONDS
) -> tuple[int, str, float, int]:
    """`monitor check-config PATH` as a process under an address-space limit: exit code, stderr, seconds, and
    the child's peak RSS in KB."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024, memory_mb * 1024 * 1024))

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        check=False,
    )
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far (>= this one)
    assert peak >= before
    return done.returncode, done.stderr, elapsed, peak


def test_alias_bomb_fails_fast_in_bounded_memory() -> None:
    """Billion laughs (9^9 strings) used to grow past 2 GB and run for minutes; now one error line in well
    under the 10 s / 500 MB budget."""
    code, stderr, elapsed, _ = check_config_limited(INVALID / "alias_bomb.yml", memory_mb=500)
    assert code == 1, stderr
    assert "alias_bomb.yml:6: aliases expand to more than 100,000 values" in stderr
    assert "Traceback" not in stderr and elapsed < CHILD_SECONDS
    started = time.monotonic()
    errors_of(INVALID / "alias_bomb.yml")
    assert time.monotonic() - started < 1.0  # in-process: the refusal costs a walk of the composed graph


def test_nested_merges_and_aliases_are_counted(tmp_path: Path) -> None:
    """<< merges of aliases count like aliases: doubling them level by level is refused before it is built."""
    inner = "&m0 {a: 1}"
    for k in range(1, 25):
        inner = f"&m{k} {{<<: [{inner}, *m{k - 1}]}}"
    path = write(tmp_path, "merges.yml", f"x: {inner}\n")
    assert errors_of(path) == [f"{path}:1: aliases expand to more than 100,000 values (an alias bomb?)"]


def test_a_few_aliases_still_work(tmp_path: Path) -> None:
    """Anchors shared by a handful of modules are normal YAML and keep working."""
    path = write(
        tmp_path,
        "ok.yml",
        "modules:\n  a: {kind: icmp, <<: &t {interval: 30s, timeout: 5s}}\n  b: {kind: tcp, <<: *t}\n"
        + "targets:\n"
        + "".join(f"  - {{name: t{i}, address: 127.0.0.{i + 1}, modules: [a, b]}}\n" for i in range(50)),
    )
    assert len(load_config(path).inventory.checks) == 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("targets:\n  - name: a\x00b\n", "2: control character NUL is not allowed"),
        ("targets:\n\n  - name: a\x1bb\n", "3: control character U+001B is not allowed"),
        ("daemon:\n  max_concurrent_probes: " + "9" * 5000 + "\n", "2: daemon.max_concurrent_probes: number too large"),
        (
            "daemon:\n  max_concurrent_probes: 18446744073709551616\n",
            "2: daemon.max_concurrent_probes: number too large",
        ),
        ("defaults:\n  interval: .inf\n", '2: defaults.interval: ".inf" is not a finite number'),
        ("defaults:\n  interval: 1.0e+999\n", '2: defaults.interval: "1.0e+999" is not a finite number'),
        ("defaults:\n  retry_interval: .nan\n", '2: defaults.retry_interval: ".nan" is not a finite number'),
        ("defaults:\n  interval: 18446744073709551615\n", "2: defaults.interval: "),
        ("version: !!int abc\n", '1: version: cannot read "abc"'),
        ("version: !!timestamp yesterday\n", '1: version: cannot read "yesterday"'),
        ("auth:\n  tokens:\n    - {expires: 2026-13-45}\n", '3: auth.tokens[0].expires: cannot read "2026-13-45"'),
        ("? [a, b]\n: 1\n", "1: keys must be plain text"),
        ("a: &x [1, *x]\n", "1: an alias refers to a node that contains it"),
        ("a: &x {b: *x}\n", "1: an alias refers to a node that contains it"),
        ("a: " + "[" * 70 + "]" * 70 + "\n", "1: nested more than 64 levels deep"),
        ('" ": 18446744073709551616\n', '1: " ": number too large'),  # a blank key is named, not left invisible
        ('" ": 1\n', '1: " ": unknown key'),
    ],
    ids=[
        "nul",
        "escape",
        "5000-digits",
        "2^64",
        "inf",
        "float-overflow",
        "nan",
        "interval-2^64-1",
        "bad-int-tag",
        "bad-timestamp-tag",
        "bad-date",
        "list-key",
        "recursive-list",
        "recursive-map",
        "deep",
        "blank-key-too-large",
        "blank-key-unknown",
    ],
)
def test_hostile_yaml_gives_a_file_line_error(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "monitor.yml", text)
    errors = errors_of(path)
    assert len(errors) >= 1 and errors[0].startswith(f"{path}:{expected}"), errors


def test_deep_nesting_does_not_crash_the_process(tmp_path: Path) -> None:
    """libyaml's composer recurses in C: 100,000 levels segfaulted check-config; now refused from the events."""
    path = write(tmp_path, "deep.yml", "a: " + "{b: " * 200_000 + "1" + "}" * 200_000 + "\n")
    code, stderr, elapsed, _ = check_config_limited(path)
    assert code == 1 and f"{path}:1: nested more than 64 levels deep" in stderr, stderr
    assert elapsed < CHILD_SECONDS
    started = time.monotonic()
    errors_of(path)
    assert time.monotonic() - started < 10


def test_not_utf8_big_file_and_not_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.yml", b"version: 1\n# caf\xe9\n")
    assert errors_of(path) == [f"{path}:2: not UTF-8 text: invalid continuation byte"]
    big = tmp_path / "big.yml"
    with big.open("wb") as f:
        f.write(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert errors_of(big) == [f"{big}:1: file larger than 16 MB"]
    assert errors_of(tmp_path) == [f"{tmp_path}: not a regular file"]
    fifo = tmp_path / "pipe.yml"
    os.mkfifo(fifo)  # opening it for reading would block forever
    assert errors_of(fifo) == [f"{fifo}: not a regular file"]


def csv_config(tmp_path: Path, rows: str | bytes) -> Path:
    csv_path = tmp_path / "inv.csv"
    header = "name,address,description\n"
    if isinstance(rows, str):
        csv_path.write_text(header + rows, encoding="utf-8")
    else:
        csv_path.write_bytes(header.encode() + rows)
    return write(tmp_path, "monitor.yml", PING + "inventories:\n  - csv: inv.csv\n")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("a,127.0.0.1,ok\nb,127.0.0.2," + "x" * 140_000 + "\n", ":3: CSV: field larger than field limit (131072)"),
        ("a,127.0.0.1," + "x" * (MAX_CSV_FIELD + 1) + "\n", ":2: description: value too long (8,193 characters"),
        ("a,127.0.0.1,ok\nb\x00,127.0.0.2,\n", ":3: control character NUL is not allowed"),
        ("a,127.0.0.1,ok,extra\n", ":2: more cells than the 3 columns of the header"),
        ("a,999.1.1.1,ok\n", ':2: "a": address: "999.1.1.1" is not a valid IP address'),
    ],
    ids=["over-csv-limit", "over-cell-limit", "nul", "extra-cell", "bad-ip"],
)
def test_hostile_csv_gives_a_file_line_error(tmp_path: Path, rows: str, expected: str) -> None:
    path = csv_config(tmp_path, rows)
    errors = errors_of(path)
    assert errors[0].startswith(f"{tmp_path / 'inv.csv'}{expected}"), errors


def test_secret_file_is_bounded(tmp_path: Path) -> None:
    write(tmp_path, "token", "x" * 100_000)
    path = write(tmp_path, "monitor.yml", "auth:\n  tokens:\n    - {name: a, role: viewer, token: {file: token}}\n")
    os.mkfifo(tmp_path / "pipe")
    fifo = write(tmp_path, "fifo.yml", "auth:\n  tokens:\n    - {name: a, role: viewer, token: {file: pipe}}\n")
    assert errors_of(fifo) == [
        f'{fifo}:3: auth.tokens[0] "a": token: secret file {tmp_path}/pipe is not a regular file'
    ]
    assert errors_of(path) == [
        f'{path}:3: auth.tokens[0] "a": token: secret file {tmp_path}/token is larger than 64 KB'
    ]


def test_host_names_still_accepted(tmp_path: Path) -> None:
    """Valid DNS names (also with digits in inner labels), IPv6 and normalised IPv4 stay fine."""
    names = ["core-1.tokyo.example.lg.jp", "10-0-0-1.example.jp", "host.example.jp.", "localhost", "2001:db8::1"]
    text = (
        PING
        + "targets:\n"
        + "".join(
            f"  - {{name: t{i}, address: '{n}', hostname: portal.example.jp, modules: [ping]}}\n"
            for i, n in enumerate(names)
        )
    )
    targets = load_config(write(tmp_path, "monitor.yml", text)).inventory.targets
    assert [t.address for t in targets.values()] == names


def test_check_config_cli_never_shows_a_traceback(tmp_path: Path) -> None:
    """Each hostile file through the CLI (one process, many files): exit 1, one printable file:line line per
    problem, then the INVALID summary; never a traceback."""
    files = {
        "nul.yml": b"targets:\n  - name: a\x00\n",
        "digits.yml": b"daemon:\n  max_concurrent_probes: " + b"9" * 5000 + b"\n",
        "escape.yml": b'targets:\n  - {name: "a\\nb\\e[31m", address: "x\\ny"}\n',
        "recursive.yml": b"a: &x [1, *x]\n",
        "timestamp.yml": b"version: !!timestamp x\n",
        "empty.yml": b"",
    }
    for name, data in files.items():
        write(tmp_path, name, data)
    write(tmp_path, "big.csv", "name,address,description\na,127.0.0.1," + "x" * 140_000 + "\n")
    write(tmp_path, "csv.yml", PING + "inventories:\n  - csv: big.csv\n")
    paths = [str(tmp_path / name) for name in (*files, "csv.yml")]
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    summaries = [line for line in lines if re.search(r": INVALID \(\d+ problems?\)$", line)]
    assert len(summaries) == len(paths), lines
    for line in lines:
        assert line.isprintable() and line.startswith(str(tmp_path)), line
        assert line in summaries or line.split(":", 2)[1].isdigit(), line


def test_value_and_target_counts_are_bounded(tmp_path: Path) -> None:
    """Memory follows values, not bytes: too many YAML values or targets are refused before being built."""
    many = write(tmp_path, "many.yml", "x: [" + ",".join(["1"] * (MAX_VALUES + 1)) + "]\n")
    started = time.monotonic()
    assert errors_of(many) == [f"{many}:1: more than 400,000 values in one file"]
    assert time.monotonic() - started < 10
    rows = "".join(f"t{i},10.0.{i // 256 % 256}.{i % 256},x\n" for i in range(MAX_TARGETS + 1))
    path = csv_config(tmp_path, rows)
    assert errors_of(path) == [
        f"{tmp_path / 'inv.csv'}:{MAX_TARGETS + 2}: more than 50,000 targets (YAML and CSV together)"
    ]


def test_csv_trailing_commas_are_not_extra_cells(tmp_path: Path) -> None:
    """Spreadsheets export empty trailing cells; only a non-empty cell beyond the header is an error."""
    path = csv_config(tmp_path, "a,127.0.0.1,ok,,\nb,127.0.0.2,,\n")
    assert set(load_config(path).inventory.targets) == {"a", "b"}
