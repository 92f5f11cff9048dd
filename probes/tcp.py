"""TCP probe: connect, optionally a TLS handshake, optionally a send/expect dialogue.

Reads are capped (``max_read_bytes``) so a target that floods costs bounded memory; the runner's
timeout bounds a target that hangs or trickles (slowloris), and then says where the probe was: the
connect, the TLS handshake, or the step and what it had received so far.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable

from pydantic import Field

from probes import base
from probes import tls as tlsinfo
from probes.base import Family, Measure, PhaseTimer, ProbeRequest, ProbeResult, ProbeSettings, Progress, Regex
from probes.net import IPProtocol, ResolveError, resolve


class Step(ProbeSettings):
    """One step of a dialogue: send a line, expect a pattern, or upgrade to TLS."""

    send: str | None = None  # sent as is; add \r\n yourself where the protocol needs it
    expect: Regex | None = None  # searched in what the target sends
    starttls: bool = False


class TCPSettings(ProbeSettings):
    port: int | None = Field(default=None, ge=1, le=65535)
    tls: bool = False  # TLS handshake right after connect
    tls_config: tlsinfo.TLSSettings = tlsinfo.TLSSettings()
    ip_protocol: IPProtocol = "auto"
    query_response: list[Step] = []
    max_read_bytes: int = Field(default=65536, ge=1, le=16 * 1024 * 1024)


async def _expect(reader: asyncio.StreamReader, pattern: bytes, limit: int, buffer: bytearray) -> bool:
    """Read until `pattern` matches what arrived, EOF, or `limit` bytes were read. On a match the
    buffer keeps only what came after it, for the next step. ``^`` and ``$`` match at line breaks:
    what is left of a matched line must not hide the next line from an anchored pattern."""
    regex = re.compile(pattern, re.MULTILINE)
    while (match := regex.search(buffer)) is None:
        if len(buffer) >= limit:
            return False
        chunk = await reader.read(limit - len(buffer))  # all that has arrived: fewer rescans of the buffer
        if not chunk:
            return False
        buffer.extend(chunk)
    del buffer[: match.end()]
    return True


def _step_where(step: int, expect: str, received: bytearray, progress: Progress) -> Callable[[], str]:
    """How a timeout words an expect step: the pattern and what had arrived (read only then)."""

    def where() -> str:
        shown = bytes(received[-80:]).decode("utf-8", "replace")
        progress.facts["received"] = shown
        got = repr(shown) if received else "nothing"
        return f"in step {step}: expected /{expect}/, got {got}"

    return where


class TCPProbe:
    name = "tcp"
    settings_model = TCPSettings
    measures: tuple[Measure, ...] = tlsinfo.MEASURES  # with `tls` or `starttls`: the certificate facts
    series: tuple[Family, ...] = ()
    phases: tuple[str, ...] = ("resolve", "connect", "tls", "dialogue")
    polls_agent = False

    def __init__(self) -> None:
        self._tls = tlsinfo.ContextCache()

    async def run(self, request: ProbeRequest, settings: TCPSettings) -> ProbeResult:
        port = request.port or settings.port
        if port is None:
            return ProbeResult.failure("no port: set port on the check or the module")
        progress = request.progress
        timer = PhaseTimer(progress)
        progress.enter("resolve", f"while resolving {request.address}")
        try:
            ip = await resolve(request.address, settings.ip_protocol)
        except ResolveError as exc:
            return ProbeResult.failure(str(exc))
        timer.mark("resolve")
        result = ProbeResult(ok=True, phases=timer.phases)
        progress.enter("connect", "while connecting")
        if not settings.tls and not settings.query_response:
            return await self._connect_only(ip, port, timer, result)
        try:
            reader, writer = await asyncio.open_connection(ip, port, limit=settings.max_read_bytes)
        except OSError as exc:
            return ProbeResult.failure(base.describe_os_error(exc), phases=timer.phases)
        timer.mark("connect")
        try:
            if settings.tls:
                progress.enter("tls", "in TLS handshake")
                await self._starttls(writer, request, settings, result)
                timer.mark("tls")
            await self._dialogue(reader, writer, request, settings, result)
            timer.mark("dialogue")
        except (OSError, ssl.SSLError) as exc:
            result.ok = False
            result.error = tlsinfo.describe_ssl_error(exc)
        finally:
            writer.close()
        return result

    @staticmethod
    async def _connect_only(ip: str, port: int, timer: PhaseTimer, result: ProbeResult) -> ProbeResult:
        """A plain connect check: a bare protocol instead of streams (half the CPU per probe)."""
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, ip, port)
        except OSError as exc:
            return ProbeResult.failure(base.describe_os_error(exc), phases=timer.phases)
        timer.mark("connect")
        timer.mark("dialogue")  # empty, but the same phase labels as every TCP check keeps dashboards uniform
        transport.close()
        return result

    async def _starttls(
        self, writer: asyncio.StreamWriter, request: ProbeRequest, settings: TCPSettings, result: ProbeResult
    ) -> None:
        server_name = settings.tls_config.server_name or request.server_name
        await writer.start_tls(self._tls.get(settings.tls_config), server_hostname=server_name)
        tlsinfo.certificate_facts(writer.get_extra_info("ssl_object"), result)

    async def _dialogue(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: ProbeRequest,
        settings: TCPSettings,
        result: ProbeResult,
    ) -> None:
        received = bytearray()
        progress = request.progress
        for index, step in enumerate(settings.query_response):
            if step.expect is not None:
                progress.enter(f"step {index + 1}", _step_where(index + 1, step.expect, received, progress))
                matched = await _expect(reader, step.expect.encode(), settings.max_read_bytes, received)
                if not matched:
                    result.ok = False
                    shown = bytes(received[-80:]).decode("utf-8", "replace")
                    result.error = f"step {index + 1}: expected /{step.expect}/, got {shown!r}"
                    return
            if step.send is not None:
                writer.write(step.send.encode())
                await writer.drain()
            if step.starttls:
                progress.enter(f"step {index + 1}", f"in step {index + 1}: in TLS handshake (starttls)")
                await self._starttls(writer, request, settings, result)
                received.clear()  # plaintext that came before the handshake must not pass for a TLS reply
