"""Secrets in config are references, never values: ``${ENV_VAR}`` or ``{file: path}``.

The reference is resolved while the config is validated; the value lives in a pydantic SecretStr,
which prints as ``**********`` in logs, reprs and API output.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr, ValidationInfo

MAX_SECRET_BYTES = 64 * 1024  # a token, a password, a key: never more
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def resolve_secret(value: Any, info: ValidationInfo) -> SecretStr:
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        match = _ENV_REF.match(value.strip())
        if not match:
            raise ValueError("secrets must be references: write ${ENV_VAR} or {file: path}, not the value")
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return SecretStr(os.environ[name])
    if isinstance(value, dict) and set(value) == {"file"}:
        base = Path((info.context or {}).get("base_dir", "."))
        path = base / str(value["file"])
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the loader forever
                raise ValueError(f"secret file {path} is not a regular file")
            with path.open("rb") as f:
                raw = f.read(MAX_SECRET_BYTES + 1)  # bounded: `file: /dev/zero` must not eat the memory
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from exc
        if len(raw) > MAX_SECRET_BYTES:
            raise ValueError(f"secret file {path} is larger than {MAX_SECRET_BYTES // 1024} KB")
        return SecretStr(raw.decode("utf-8").rstrip("\r\n"))  # UnicodeDecodeError is a ValueError
    raise ValueError("secrets must be references: write ${ENV_VAR} or {file: path}")


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]
