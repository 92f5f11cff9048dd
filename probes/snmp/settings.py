"""The `snmp:` block of a module: version and credentials (secret references), cost bounds, which
interfaces matter, how often labels are re-read, and extra OIDs with thresholds."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, model_validator

from monitor.config.types import Timeout
from probes.base import ProbeSettings, Regex
from probes.secret import Secret
from probes.snmp.ber import OID

_OID_TEXT = re.compile(r"^\.?\d+(\.\d+)+$")


def parse_oid(value: Any) -> OID:
    if isinstance(value, tuple):
        return value
    text = str(value).strip()
    if not _OID_TEXT.match(text):
        raise ValueError(f'"{text}" is not a numeric OID (write e.g. 1.3.6.1.4.1.9.9.109.1.1.1.1.8)')
    oid = tuple(int(x) for x in text.lstrip(".").split("."))
    if oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f'"{text}" is not a valid OID')
    return oid


def _version(value: Any) -> str:
    text = str(value).strip().lower().removeprefix("v")
    if text not in ("1", "2c", "3"):
        raise ValueError(f'must be one of 1, 2c, 3, not "{value}"')
    return text


NumericOID = Annotated[
    tuple[int, ...], BeforeValidator(parse_oid), PlainSerializer(lambda oid: ".".join(map(str, oid)), return_type=str)
]
Version = Annotated[Literal["1", "2c", "3"], BeforeValidator(_version)]
AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
# AES-192/256 extend the localized key as Cisco does (Reeder draft; net-snmp's "AES-192-C"), as they have
# always done here; the -Blumenthal forms as net-snmp's own "AES-192"/"AES-256" do (probes.snmp.usm).
PrivProtocol = Literal["DES", "AES", "AES-192", "AES-256", "AES-192-Blumenthal", "AES-256-Blumenthal"]


class V3Credentials(ProbeSettings):
    username: str = Field(min_length=1)
    security_level: Literal["noAuthNoPriv", "authNoPriv", "authPriv"] = "authPriv"
    auth_protocol: AuthProtocol = "SHA"
    auth_key: Secret | None = None
    priv_protocol: PrivProtocol = "AES"
    priv_key: Secret | None = None
    context_name: str = ""

    @model_validator(mode="after")
    def _keys_for_level(self) -> V3Credentials:
        if self.security_level != "noAuthNoPriv" and self.auth_key is None:
            raise ValueError(f"security_level {self.security_level} needs auth_key")
        if self.security_level == "authPriv" and self.priv_key is None:
            raise ValueError("security_level authPriv needs priv_key")
        return self


class InterfaceSelection(ProbeSettings):
    """Which interfaces become series (all when no include rule is given)."""

    names: list[Regex] = []  # ifName (ifDescr where the agent has no ifName) matches one of these
    aliases: list[Regex] = []  # or ifAlias (the operator's description) matches one of these
    indexes: list[int] = []  # or ifIndex is one of these
    exclude: list[Regex] = []  # and neither ifName nor ifDescr matches one of these

    def selects(self, index: int, name: str, descr: str, alias: str) -> bool:
        if any(re.search(p, name) or re.search(p, descr) for p in self.exclude):
            return False
        if not (self.names or self.aliases or self.indexes):
            return True
        return (
            index in self.indexes
            or any(re.search(p, name or descr) for p in self.names)
            or any(re.search(p, alias) for p in self.aliases)
        )


class OidCheck(ProbeSettings):
    """One scalar or table column with thresholds, e.g. CPU load, temperature, fan, BGP peer state."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")  # label value `name`
    description: str | None = None  # the human name ("Chassis temperature")
    oid: NumericOID  # a scalar instance (ends in .0) or, with table: true, a column
    table: bool = False  # walk the column: one value per index
    scale: float = 1.0  # multiply the raw value (e.g. 0.1 for tenths of a degree)
    max: float | None = None  # violated when the (scaled) value is above
    min: float | None = None  # violated when below
    ok_values: list[int | str] = []  # violated when the value is not one of these (fan ok, BGP established=6)
    severity: Literal["down", "degraded"] = "down"  # what a violation does to the check
    missing: Literal["fail", "ignore"] = "fail"  # an OID the agent does not have


class SnmpSettings(ProbeSettings):
    version: Version = "2c"
    community: Secret | None = None  # v1/v2c
    v3: V3Credentials | None = None
    port: int = Field(default=161, ge=1, le=65535)
    timeout: Timeout = 2.0  # per request, not per poll; a poll makes several requests
    retries: int = Field(default=1, ge=0, le=5)
    max_repetitions: int = Field(default=25, ge=1, le=200)
    max_oids_per_request: int = Field(default=40, ge=1, le=200)
    max_requests_in_flight: int = Field(default=200, ge=1, le=5000)  # per probe instance (v1/v2c socket)
    max_walk_varbinds: int = Field(default=50_000, ge=100, le=1_000_000)
    interfaces: InterfaceSelection = InterfaceSelection()
    label_refresh_cycles: int = Field(default=10, ge=1, le=10_000)  # re-read ifName/ifAlias every N polls
    counters: Literal["auto", "64", "32"] = "auto"  # auto: ifHC* where the agent has them, else 32-bit
    admin_down: Literal["down", "ok"] = "down"  # an interface check on an admin-down port
    oids: list[OidCheck] = []

    @model_validator(mode="after")
    def _credentials(self) -> SnmpSettings:
        if self.version == "3":
            if self.v3 is None:
                raise ValueError("version 3 needs a v3 block (username, keys)")
            if self.community is not None:
                raise ValueError("community does not apply to version 3")
        else:
            if self.community is None:
                raise ValueError(f"version {self.version} needs community (a secret reference)")
            if self.v3 is not None:
                raise ValueError(f"a v3 block does not apply to version {self.version}")
        names = [o.name for o in self.oids]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f'two oids named "{duplicates[0]}"')
        return self
