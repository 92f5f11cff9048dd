"""The `traps:` section: where the SNMP trap/inform listener binds, whom it believes, what trap OIDs mean."""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.config.types import Timeout
from probes.secret import Secret
from probes.snmp.settings import NumericOID, V3Credentials

DEFAULT_PORT = 162  # the standard trap port (privileged)
UNPRIVILEGED_PORT = 10162  # where a daemon that is not root listens by default

EventKind = Literal["link_down", "link_up", "cold_start", "warm_start", "auth_failure", "security", "info"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrapV3User(V3Credentials):
    # A TRAP (unconfirmed) is authenticated with the *sender's* engine id, which must be configured;
    # INFORMs discover ours, so engine_id may be left out for users that only send informs.
    engine_id: str | None = None  # hex, e.g. 8000000001020304

    @field_validator("engine_id")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().lower().removeprefix("0x").replace(":", "")
        if not re.fullmatch(r"([0-9a-f]{2}){5,32}", text):
            raise ValueError(f'engine_id must be 5-32 bytes of hex, e.g. 80001f8880..., not "{value}"')
        return text


class TrapMapping(_Strict):
    """A trap OID of the operator's equipment (e.g. a firewall's security traps) and what it means."""

    oid: NumericOID  # snmpTrapOID (v2c/v3), or enterprise.0.specific for v1 traps
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")  # the `trap` label and event name
    event: EventKind = "info"
    repoll: bool = True  # probe the agent's SNMP checks now (coalesced per agent)


class RateLimit(_Strict):
    per_second: float = Field(default=20.0, gt=0, le=100_000)  # traps per agent fully processed per second
    burst: int = Field(default=100, ge=1, le=1_000_000)


class TrapsConfig(_Strict):
    listen: str | None = None  # HOST:PORT; default 0.0.0.0:162 as root, else 0.0.0.0:10162
    communities: list[Secret] = []  # v1/v2c communities accepted (secret references)
    v3_users: list[TrapV3User] = []
    mappings: list[TrapMapping] = []
    rate_limit: RateLimit = RateLimit()
    coalesce: Timeout = 0.5  # re-polls one agent's traps ask for are batched this long
    # bytes of kernel queue for the trap socket (SO_RCVBUF, SO_RCVBUFFORCE as root; otherwise capped by
    # net.core.rmem_max): what a burst can fill while the daemon is busy; beyond it the kernel drops
    # (counted in monitor_traps_dropped_total{reason="kernel"}). ~1 KiB per small trap on loopback.
    receive_buffer: int = Field(default=16 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    # SNMPv3 datagrams waiting for pysnmp (USM costs ~1 ms each): past this they are dropped and counted
    # (reason="backlog"), so a v3 flood cannot hold up v1/v2c traps or the probes.
    v3_backlog: int = Field(default=5000, ge=1, le=1_000_000)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            from monitor.config.model import parse_listen  # the daemon's HOST:PORT rule

            parse_listen(value)
        return value

    @model_validator(mode="after")
    def _unique(self) -> TrapsConfig:
        oids = [m.oid for m in self.mappings]
        for oid in oids:
            if oids.count(oid) > 1:
                raise ValueError(f"two mappings for trap OID {'.'.join(map(str, oid))}")
        return self

    def listen_address(self) -> tuple[str, int]:
        from monitor.config.model import parse_listen

        if self.listen is not None:
            return parse_listen(self.listen)
        return "0.0.0.0", DEFAULT_PORT if os.geteuid() == 0 else UNPRIVILEGED_PORT
