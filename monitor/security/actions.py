"""How a connection is cut and restored, and how the edge device is read to verify it.

- snmp_set: SET ifAdminStatus.<ifIndex> = down(2) / up(1) on the edge device through pysnmp
  (v3 authPriv preferred; v2c with a write community where the device has nothing better). Setting
  the value it already has changes nothing, so a repeated SET after a restart is harmless.
- webhook: POST a JSON action, HMAC-signed like the webhook notifier; any 2xx is done.
- command: run argv (no shell) with the action in its environment; exit status 0 is done.
Webhooks and commands carry an idempotency key (security incident, step): a receiver that gets the
same key twice (a restart in mid-action) must act once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.config.security_model import CutAction, SnmpWrite
from probes.snmp.settings import SnmpSettings
from probes.snmp.v3 import _auth, _hlapi

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"
ADMIN = {"cut": 2, "reconnect": 1}  # ifAdminStatus down(2), up(1)


class ActionError(Exception):
    """The action could not be carried out; the message says why, for the timeline and the page."""


@dataclass(frozen=True, slots=True)
class InterfaceStatus:
    admin: int | None
    oper: int | None
    octets: int | None  # in + out (ifHC*), for the traffic check
    at: float  # monotonic


class SnmpControl:
    """One pysnmp engine for the desk's reads and writes, created on first use."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._h: Any = None

    def _setup(self) -> Any:
        if self._engine is None:
            self._h = _hlapi()
            self._engine = self._h.SnmpEngine()
        return self._h

    async def _peer(self, creds: SnmpWrite | SnmpSettings, address: str) -> tuple[Any, Any]:
        h = self._setup()
        if creds.version == "3":
            assert creds.v3 is not None
            auth = _auth(h, creds.v3)
        else:
            assert creds.community is not None
            auth = h.CommunityData(creds.community.get_secret_value(), mpModel=0 if creds.version == "1" else 1)
        cls = h.Udp6TransportTarget if ":" in address else h.UdpTransportTarget
        target = await cls.create((address, creds.port), timeout=creds.timeout, retries=creds.retries)
        return auth, target

    async def _call(self, creds: SnmpWrite | SnmpSettings, address: str, op: str, varbinds: list[Any]) -> list[Any]:
        h = self._setup()
        auth, target = await self._peer(creds, address)
        command = h.set_cmd if op == "set" else h.get_cmd
        indication, status, index, answer = await command(
            self._engine, auth, target, h.ContextData(), *varbinds, lookupMib=False
        )
        if indication:
            raise ActionError(f"SNMP {op} on {address}: {indication}")
        if status:
            raise ActionError(f"SNMP {op} on {address}: {status.prettyPrint()} (varbind {int(index)})")
        return list(answer)

    async def set_admin(self, creds: SnmpWrite, address: str, if_index: int, value: int) -> None:
        h = self._setup()
        from pysnmp.proto.rfc1902 import Integer

        oid = h.ObjectIdentity(f"{IF_ADMIN_STATUS}.{if_index}")
        await self._call(creds, address, "set", [h.ObjectType(oid, Integer(value))])

    async def find_index(self, creds: SnmpWrite | SnmpSettings, address: str, interface: str) -> int | None:
        """The ifIndex whose ifName, ifDescr or ifAlias is `interface` (a number is taken as the ifIndex)."""
        if interface.isdigit():
            return int(interface)
        h = self._setup()
        auth, target = await self._peer(creds, address)
        for column in (IF_NAME, IF_DESCR, IF_ALIAS):
            walk = h.walk_cmd(self._engine, auth, target, h.ContextData(), h.ObjectType(h.ObjectIdentity(column)),
                              lexicographicMode=False, lookupMib=False)  # fmt: skip
            async for indication, status, _index, answer in walk:
                if indication or status:
                    raise ActionError(f"SNMP walk on {address}: {indication or status.prettyPrint()}")
                for name, value in answer:
                    if str(value) == interface:
                        return int(tuple(name)[-1])
        return None

    async def status(self, creds: SnmpWrite | SnmpSettings, address: str, if_index: int) -> InterfaceStatus:
        h = self._setup()
        oids = [f"{base}.{if_index}" for base in (IF_ADMIN_STATUS, IF_OPER_STATUS, IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS)]
        answer = await self._call(creds, address, "get", [h.ObjectType(h.ObjectIdentity(o)) for o in oids])
        values: list[int | None] = []
        for _name, value in answer:
            try:
                values.append(int(value))
            except (TypeError, ValueError):  # noSuchInstance / noSuchObject
                values.append(None)
        values += [None] * (4 - len(values))
        octets = values[2] + values[3] if values[2] is not None and values[3] is not None else None
        return InterfaceStatus(values[0], values[1], octets, time.monotonic())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def call_webhook(action: CutAction, body: dict[str, Any]) -> str:
    assert action.url is not None
    data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": body["idempotency_key"],
        "X-Monitor-Timestamp": timestamp,
    }
    if action.secret is not None:
        headers["X-Monitor-Signature"] = signature(action.secret.get_secret_value().encode(), timestamp, data)
    try:
        timeout = aiohttp.ClientTimeout(total=action.timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(action.url, data=data, headers=headers) as response,
        ):
            text = (await response.content.read(2000)).decode("utf-8", "replace")
            if not 200 <= response.status < 300:
                raise ActionError(f"webhook answered HTTP {response.status}: {text[:200]}")
            return f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ActionError(f"webhook failed: {exc.__class__.__name__} {exc}".strip()) from None


async def run_command(action: CutAction, body: dict[str, Any]) -> str:
    env = {
        **os.environ,
        "MONITOR_ACTION": body["action"],
        "MONITOR_CONNECTION": body["connection"],
        "MONITOR_ORGANISATION": body["organisation"],
        "MONITOR_DEVICE": body.get("device") or "",
        "MONITOR_DEVICE_ADDRESS": body.get("address") or "",
        "MONITOR_INTERFACE": body.get("interface") or "",
        "MONITOR_IF_INDEX": str(body.get("if_index") or ""),
        "MONITOR_SECURITY_INCIDENT": str(body["security_incident"]),
        "MONITOR_IDEMPOTENCY_KEY": body["idempotency_key"],
    }
    try:
        process = await asyncio.create_subprocess_exec(
            *action.argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise ActionError(f"command could not start: {exc.strerror or exc}") from None
    try:
        output, _ = await asyncio.wait_for(process.communicate(), action.timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ActionError(f"command did not finish within {action.timeout:g}s and was killed") from None
    tail = output.decode("utf-8", "replace").strip()[-300:]
    if process.returncode != 0:
        raise ActionError(f"command exited with status {process.returncode}: {tail}")
    return tail or "exit 0"
