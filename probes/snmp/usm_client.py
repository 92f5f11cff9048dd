"""SNMPv3 sessions on the project's own USM (probes.snmp.usm) over one UDP socket per probe instance.

What a request does, and why:

- Engine discovery (RFC 3414 4): the first request to an agent is a noAuthNoPriv GET with an empty engine
  id; the agent's usmStatsUnknownEngineIDs report carries its engine id, engineBoots and engineTime. The
  engine is remembered per (address, port) with the moment its time was learnt, so later requests carry
  the agent's current time without asking again.
- Keys are localized once per (credentials, engine id) and cached; the 1 MiB password hash (the costly
  step) once per credentials, so 2,000 devices sharing one user cost 2,000 small hashes, not 4,000 large
  ones. (AES-192/256 with the Reeder extension need one more password hash per engine: that is the
  algorithm.)
- Responses are matched by msgID and source address, then checked before they can answer the request:
  an authenticated response must carry the user's MAC (a wrong digest is dropped and counted, never
  accepted), the engine id and user name we sent, and a time inside the window (RFC 3414 3.2.7: not
  older than 150 s of the agent's clock as we know it), or it is a replay. An unauthenticated answer is
  accepted only as a plaintext Report (agents cannot authenticate "wrong digest" or "unknown user").
- Reports become reasons: notInTimeWindow (authenticated) resynchronizes the clock and retries once,
  unknownEngineID (the device was replaced or reset) rediscovers and retries once; every other report
  is the failure, named with its usmStats counter. A silence at authPriv from an agent that answers the
  same user at authNoPriv is named as a privacy key mismatch (net-snmp drops what it cannot decrypt); asked
  only until the user has had one authPriv answer from that engine, so a dead agent costs no extra request.
- A send refused by this host (firewall, EMFILE) is this host's failure (LocalFailure via
  base.describe_os_error), as for v1/v2c.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.snmp import ber, usm
from probes.snmp.ber import OID, VarBind
from probes.snmp.settings import SnmpSettings, V3Credentials
from probes.snmp.transport import SnmpError, SnmpErrorStatus, SnmpTimeout, UdpDispatcher

TIME_WINDOW = 150  # seconds (RFC 3414 2.2.3)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)


@dataclass(slots=True)
class Engine:
    """What we know of one authoritative engine (an agent)."""

    engine_id: bytes
    boots: int
    engine_time: int
    learnt_at: float  # monotonic time engine_time was current

    def clock(self) -> tuple[int, int]:
        """(engineBoots, engineTime) now, as the agent counts them."""
        return self.boots, min(self.engine_time + int(time.monotonic() - self.learnt_at), 0x7FFFFFFF)

    def observe(self, boots: int, engine_time: int) -> None:
        """RFC 3414 3.2.7.b: take the agent's clock from an authentic message when it is later than ours."""
        now_boots, now_time = self.clock()
        if boots > now_boots or (boots == now_boots and engine_time > now_time):
            self.boots, self.engine_time, self.learnt_at = boots, engine_time, time.monotonic()

    def in_window(self, boots: int, engine_time: int) -> bool:
        now_boots, now_time = self.clock()
        return boots > now_boots or (boots == now_boots and engine_time >= now_time - TIME_WINDOW)


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[tuple[usm.Message, usm.ScopedPdu]]
    address: tuple[str, int]
    keys: usm.UserKeys
    engine: Engine | None  # None: a discovery request (nothing to authenticate against yet)
    request_id: int


@dataclass(slots=True)
class Counters:
    malformed: int = 0  # datagrams that were not SNMPv3
    unmatched: int = 0  # unknown msgID or wrong source address
    wrong_digest: int = 0  # authenticated answers whose MAC is not the user's
    replayed: int = 0  # authentic answers outside the time window
    rejected: int = 0  # other answers that do not belong to the request (engine, user, level, request id)


class V3Dispatcher(UdpDispatcher):
    """The v3 socket: sends requests, accepts only answers that authenticate as the request's user."""

    def __init__(self, max_in_flight: int = 200) -> None:
        super().__init__(max_in_flight)
        self._v3_pending: dict[int, _Pending] = {}
        self.counts = Counters()
        self._salt = random.getrandbits(64)  # RFC 3826 3.1.2.1: a counter from a random start, per sender

    def next_salt(self) -> int:
        salt = self._salt
        self._salt = (salt + 1) & 0xFFFFFFFFFFFFFFFF
        return salt

    def close(self) -> None:
        super().close()
        for pending in self._v3_pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._v3_pending.clear()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            message = usm.decode(data)
        except ber.BerError:
            self.counts.malformed += 1
            return
        pending = self._v3_pending.get(message.msg_id)
        if pending is None or pending.future.done() or pending.address[0] != addr[0] or pending.address[1] != addr[1]:
            self.counts.unmatched += 1
            return
        try:
            scoped = self._accept(pending, message)
        except ber.BerError:
            scoped = None
            self.counts.rejected += 1
        if scoped is not None:
            pending.future.set_result((message, scoped))

    def _accept(self, pending: _Pending, message: usm.Message) -> usm.ScopedPdu | None:
        """The scoped PDU of an answer that belongs to the request; None (counted) for one that does not."""
        keys, engine = pending.keys, pending.engine
        if message.flags & usm.FLAG_AUTH:
            if engine is None or message.engine_id != engine.engine_id or message.user != keys.user:
                self.counts.rejected += 1
                return None
            if not usm.authentic(message, keys):
                self.counts.wrong_digest += 1
                return None
            scoped = usm.open_scoped(message, keys)
            if scoped.pdu == ber.REPORT and _report_oid(scoped) == usm.NOT_IN_TIME_WINDOW:
                return scoped  # it carries the clock to resync to: judged by the session, not the window
            if not engine.in_window(message.boots, message.time):
                self.counts.replayed += 1
                return None
            engine.observe(message.boots, message.time)
        else:
            if message.encrypted is not None or message.flags & usm.FLAG_PRIV:
                self.counts.rejected += 1
                return None
            scoped = usm.decode_scoped(message.scoped or b"")
            # an agent cannot authenticate "wrong digest" or "unknown user": only reports may come unauthenticated
            if keys.flags & usm.FLAG_AUTH and scoped.pdu != ber.REPORT:
                self.counts.rejected += 1
                return None
        if scoped.pdu == ber.RESPONSE and scoped.request_id != pending.request_id:
            self.counts.rejected += 1
            return None
        if scoped.pdu not in (ber.RESPONSE, ber.REPORT):
            self.counts.rejected += 1
            return None
        return scoped

    async def exchange(
        self,
        address: tuple[str, int],
        build: _Builder,
        keys: usm.UserKeys,
        engine: Engine | None,
        per_try: float,
        retries: int,
        deadline: float,
    ) -> tuple[usm.Message, usm.ScopedPdu]:
        """Send build(msg_id) up to 1 + retries times (each try re-stamped with the agent's clock)."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        transport = await self._transport(family)
        loop = asyncio.get_running_loop()
        async with self.slots:
            msg_id = self._request_id()
            try:
                for _attempt in range(retries + 1):
                    wait = min(per_try, deadline - time.monotonic())
                    if wait <= 0:
                        break
                    future: asyncio.Future[tuple[usm.Message, usm.ScopedPdu]] = loop.create_future()
                    self._v3_pending[msg_id] = _Pending(future, address, keys, engine, msg_id)
                    self._send(transport, build(msg_id), address)
                    timer = loop.call_later(wait, _expire, future)
                    try:
                        return await future
                    except TimeoutError:
                        continue
                    finally:
                        timer.cancel()
            finally:
                self._v3_pending.pop(msg_id, None)
        raise SnmpTimeout(f"no SNMPv3 response from {address[0]}:{address[1]} after {retries + 1} tries")


class _Builder:
    """One request's message for a msgID: the PDU is fixed, the clock and salt are taken at send time."""

    __slots__ = ("context_name", "engine", "f2", "f3", "flags", "keys", "oids", "pdu", "salt")

    def __init__(
        self,
        keys: usm.UserKeys,
        engine: Engine | None,
        context_name: bytes,
        pdu: int,
        oids: list[OID],
        f2: int,
        f3: int,
        salt: V3Dispatcher,
        flags: int | None = None,
    ) -> None:
        self.keys, self.engine, self.context_name, self.pdu, self.oids = keys, engine, context_name, pdu, oids
        self.f2, self.f3, self.salt, self.flags = f2, f3, salt, flags

    def __call__(self, msg_id: int) -> bytes:
        engine_id, boots, now = b"", 0, 0
        if self.engine is not None:
            engine_id = self.engine.engine_id
            boots, now = self.engine.clock()
        pdu = ber.encode_pdu(self.pdu, msg_id, self.oids, self.f2, self.f3)
        scoped = usm.encode_scoped(engine_id, self.context_name, pdu)
        return usm.encode(self.keys, msg_id, engine_id, boots, now, scoped, self.salt.next_salt(), flags=self.flags)


def _expire(future: asyncio.Future[tuple[usm.Message, usm.ScopedPdu]]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _report_oid(scoped: usm.ScopedPdu) -> OID | None:
    return scoped.varbinds[0][0] if scoped.varbinds else None


def report_reason(scoped: usm.ScopedPdu, user: str) -> str:
    """What an agent's Report PDU means, for the operator: the usmStats counter and its meaning."""
    oid = _report_oid(scoped)
    known = usm.REPORTS.get(oid) if oid is not None else None
    if known is None:
        name = ".".join(map(str, oid)) if oid is not None else "empty"
        return f"SNMPv3 report {name} from the agent"
    counter, meaning = known
    return f'SNMPv3 {meaning} for user "{user}" (agent reports {counter})'


class _MasterKeys:
    """A credential set's password-derived keys (RFC 3414 A.2.1 before localization), per hash."""

    __slots__ = ("_ku", "creds")

    def __init__(self, creds: V3Credentials) -> None:
        self.creds = creds
        self._ku: dict[tuple[str, str], bytes] = {}

    def ku(self, which: str, hash_name: str) -> bytes:
        got = self._ku.get((which, hash_name))
        if got is None:
            secret = self.creds.auth_key if which == "auth" else self.creds.priv_key
            assert secret is not None
            got = self._ku[(which, hash_name)] = usm.password_to_key(secret.get_secret_value().encode(), hash_name)
        return got

    def localize(self, engine_id: bytes) -> usm.UserKeys:
        c = self.creds
        user = c.username.encode()
        if c.security_level == "noAuthNoPriv":
            return usm.UserKeys(user, "noAuthNoPriv")
        auth = usm.AUTH[c.auth_protocol]
        akey = usm.localize(self.ku("auth", auth.hash), engine_id, auth.hash)
        if c.security_level == "authNoPriv":
            return usm.UserKeys(user, "authNoPriv", auth, akey)
        priv = usm.PRIV[c.priv_protocol]
        pkey = usm.localize(self.ku("priv", auth.hash), engine_id, auth.hash)
        return usm.UserKeys(user, "authPriv", auth, akey, priv, usm.extend_priv_key(pkey, engine_id, auth, priv))


def credentials_id(creds: V3Credentials) -> str:
    """An identity for the key cache that tells keys apart (cache_key masks secrets) without holding them."""
    h = hashlib.sha256(creds.model_dump_json().encode())
    for secret in (creds.auth_key, creds.priv_key):
        h.update(b"\0" + (secret.get_secret_value().encode() if secret is not None else b""))
    return h.hexdigest()


@dataclass
class V3Factory:
    """The probe instance's v3 state: one socket, the engines it has met, the keys localized to them."""

    dispatcher: V3Dispatcher | None = None
    engines: dict[tuple[str, int], Engine] = field(default_factory=dict)
    _masters: dict[str, _MasterKeys] = field(default_factory=dict)
    _keys: dict[tuple[str, bytes], usm.UserKeys] = field(default_factory=dict)
    _discovering: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict)
    # (credentials, engine id) that have had an authPriv answer: their silence is the agent's, not a key's
    proven: set[tuple[str, bytes]] = field(default_factory=set)

    async def session(self, ip: str, port: int, settings: SnmpSettings) -> V3Session:
        creds = settings.v3
        assert creds is not None
        if self.dispatcher is None:
            self.dispatcher = V3Dispatcher(settings.max_requests_in_flight)
        cid = credentials_id(creds)
        if cid not in self._masters:
            self._masters[cid] = _MasterKeys(creds)
        return V3Session(self, self.dispatcher, (ip, port), creds, cid, settings.timeout, settings.retries)

    def keys(self, cid: str, engine_id: bytes) -> usm.UserKeys:
        keys = self._keys.get((cid, engine_id))
        if keys is None:
            try:
                keys = self._keys[(cid, engine_id)] = self._masters[cid].localize(engine_id)
            except ValueError as exc:  # a key shorter than RFC 3414 allows: the config's, not the agent's
                raise SnmpError(f"SNMPv3 credentials unusable: {exc}") from None
        return keys

    async def engine(
        self, address: tuple[str, int], per_try: float, retries: int, deadline: float, *, fresh: bool = False
    ) -> Engine:
        """The agent's engine, discovered on first use (or again with `fresh`: it was replaced)."""
        known = self.engines.get(address)
        if known is not None and not fresh:
            return known
        lock = self._discovering.setdefault(address, asyncio.Lock())
        async with lock:
            latest = self.engines.get(address)
            if latest is not None and latest is not known:  # discovered while we waited
                return latest
            assert self.dispatcher is not None
            probe = usm.UserKeys(b"", "noAuthNoPriv")
            build = _Builder(probe, None, b"", ber.GET, [], 0, 0, self.dispatcher)
            message, scoped = await self.dispatcher.exchange(address, build, probe, None, per_try, retries, deadline)
            if scoped.pdu != ber.REPORT or not message.engine_id:
                raise SnmpError("SNMPv3 engine discovery failed: the agent answered without its engine id")
            engine = Engine(message.engine_id, message.boots, message.time, time.monotonic())
            self.engines[address] = engine
            return engine

    def forget(self, address: tuple[str, int]) -> None:
        self.engines.pop(address, None)

    def close(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.close()
            self.dispatcher = None
        self.engines.clear()
        self.proven.clear()
        self._keys.clear()
        self._masters.clear()

    @property
    def stats(self) -> Counters:
        return self.dispatcher.counts if self.dispatcher is not None else Counters()


class V3Session:
    """SNMPv3 (USM) for one device and one credential set, over the factory's socket."""

    version = "3"

    def __init__(
        self,
        factory: V3Factory,
        dispatcher: V3Dispatcher,
        address: tuple[str, int],
        creds: V3Credentials,
        cid: str,
        timeout: float,
        retries: int,
    ) -> None:
        self._factory, self._dispatcher, self.address = factory, dispatcher, address
        self._creds, self._cid, self._timeout, self._retries = creds, cid, timeout, retries
        self._context = creds.context_name.encode()

    async def _call(self, pdu: int, oids: Sequence[OID], deadline: float, f2: int = 0, f3: int = 0) -> list[VarBind]:
        factory, oid_list = self._factory, list(oids)
        engine = await factory.engine(self.address, self._timeout, self._retries, deadline)
        resynced = rediscovered = False
        while True:
            keys = factory.keys(self._cid, engine.engine_id)
            build = _Builder(keys, engine, self._context, pdu, oid_list, f2, f3, self._dispatcher)
            try:
                message, scoped = await self._dispatcher.exchange(
                    self.address, build, keys, engine, self._timeout, self._retries, deadline
                )
            except SnmpTimeout:
                unproven = (self._cid, engine.engine_id) not in factory.proven
                if keys.level == "authPriv" and unproven and await self._answers_without_privacy(engine, deadline):
                    raise SnmpError(
                        f'SNMPv3 privacy key or protocol mismatch for user "{self._creds.username}" (the agent '
                        f"answers it at authNoPriv but not at authPriv with {self._creds.priv_protocol})"
                    ) from None
                raise
            if scoped.pdu == ber.RESPONSE:
                factory.proven.add((self._cid, engine.engine_id))
                if scoped.error_status:
                    raise SnmpErrorStatus(scoped.error_status, scoped.error_index)
                return scoped.varbinds
            oid = _report_oid(scoped)
            if oid == usm.NOT_IN_TIME_WINDOW and message.flags & usm.FLAG_AUTH and not resynced:
                # authentic: the agent's clock is now known (it rebooted, or our notion drifted); retry once
                engine.boots, engine.engine_time, engine.learnt_at = message.boots, message.time, time.monotonic()
                resynced = True
                continue
            if oid == usm.UNKNOWN_ENGINE_ID and not rediscovered:
                engine = await factory.engine(self.address, self._timeout, self._retries, deadline, fresh=True)
                rediscovered = True
                continue
            if oid == usm.NOT_IN_TIME_WINDOW and resynced:
                raise SnmpError(
                    f'SNMPv3 not in time window for user "{self._creds.username}" after resynchronizing '
                    f"(engineBoots {message.boots}, engineTime {message.time}; agent reports usmStatsNotInTimeWindows)"
                )
            raise SnmpError(report_reason(scoped, self._creds.username))

    async def _answers_without_privacy(self, engine: Engine, deadline: float) -> bool:
        """One authNoPriv GET of sysUpTime: does the agent authenticate this user at all? (net-snmp drops
        an authPriv request it cannot decrypt without a report, which would otherwise read as a dead agent.)"""
        if deadline - time.monotonic() < 0.05:
            return False
        keys = self._factory.keys(self._cid, engine.engine_id)
        probe = usm.UserKeys(keys.user, "authNoPriv", keys.auth, keys.auth_key)
        build = _Builder(probe, engine, self._context, ber.GET, [SYS_UPTIME], 0, 0, self._dispatcher)
        try:
            message, _ = await self._dispatcher.exchange(
                self.address, build, probe, engine, min(self._timeout, 1.0), 0, deadline
            )
        except SnmpError:
            return False
        return bool(message.flags & usm.FLAG_AUTH)

    async def get(self, oids: Sequence[OID], deadline: float) -> list[VarBind]:
        return await self._call(ber.GET, oids, deadline)

    async def get_next(self, oids: Sequence[OID], deadline: float) -> list[VarBind]:
        return await self._call(ber.GET_NEXT, oids, deadline)

    async def get_bulk(self, oids: Sequence[OID], max_repetitions: int, deadline: float) -> list[VarBind]:
        return await self._call(ber.GET_BULK, oids, deadline, 0, max_repetitions)
