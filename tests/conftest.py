"""Shared helpers: write a config to a temporary folder and load it."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config.loader import LoadedConfig, load_config

Loader = Callable[[str], LoadedConfig]


@pytest.fixture
def load_yaml_config(tmp_path: Path) -> Loader:
    """Write YAML text (dedented) to tmp_path/monitor.yml and load it."""

    def load(text: str) -> LoadedConfig:
        path = tmp_path / "monitor.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return load_config(path)

    return load
