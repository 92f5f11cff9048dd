"""TCP probe against real loopback peers: connect, refusal, hangs, garbage, floods, dialogues, TLS."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import Any

import pytest

from probes import tls
from probes.base import ProbeRequest, ProbeResult
from probes.tcp import Step, TCPProbe, TCPSettings

TLS_EARLIEST_NOT_AFTER, TLS_NOT_AFTER = tls.EARLIEST_NOT_AFTER.key, tls.NOT_AFTER.key  # keys of ProbeResult.values

LOOPBACK4 = "127.0.0.1"


async def idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, send nothing, wait for the peer to hang up."""
    await reader.read()


def request(port: int | None, *, address: str = LOOPBACK4, hostname: str | None = None) -> ProbeRequest:
    return ProbeRequest(address, hostname, port, 1.0)


def tcp_settings(**kw: Any) -> TCPSettings:
    return TCPSettings.model_validate(kw)


async def probe(req: ProbeRequest, settings: TCPSettings) -> ProbeResult:
    """Run a TCP probe, bounded so that a probe bug fails the test instead of hanging it."""
    async with asyncio.timeout(3):
        return await TCPProbe().run(req, settings)


# ------------------------------------------------------------------------------------------ connect


async def test_connect_ok_records_phases(peers: Any) -> None:
    """A listening port gives ok with resolve, connect and dialogue phases (no tls phase)."""
    port = await peers.tcp(idle)
    result = await probe(request(port), TCPSettings())
    assert result.ok, result.error
    assert result.error is None
    assert set(result.phases) == {"resolve", "connect", "dialogue"}
    assert all(0 <= seconds < 1 for seconds in result.phases.values())
    await peers.wait_connections(1)


async def test_port_from_module_settings(peers: Any) -> None:
    """Without a port on the request, the module's port is used."""
    port = await peers.tcp(idle)
    result = await probe(request(None), tcp_settings(port=port))
    assert result.ok, result.error
    await peers.wait_connections(1)


async def test_no_port_anywhere_is_a_failure() -> None:
    """No port on the request or the module is a failure that says so."""
    result = await probe(request(None), TCPSettings())
    assert not result.ok
    assert result.error == "no port: set port on the check or the module"


async def test_connection_refused(refused_port: int) -> None:
    """A closed port fails with 'connection refused'."""
    result = await probe(request(refused_port), TCPSettings())
    assert not result.ok
    assert result.error == "connection refused"
    assert "connect" not in result.phases


async def test_ipv6_loopback(peers: Any, ipv6_loopback: str) -> None:
    """An IPv6 literal (::1) is connected to over IPv6."""
    seen: list[str] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.write(b"hello6\r\n")
        await reader.read()

    port = await peers.tcp(record, host=ipv6_loopback)
    settings = tcp_settings(query_response=[{"expect": "^hello6"}])
    result = await probe(request(port, address=ipv6_loopback), settings)
    assert result.ok, result.error
    assert seen == ["::1"]


async def test_ip_protocol_ip4_resolves_name(peers: Any) -> None:
    """A name target (localhost) is resolved with the module's ip_protocol and connected to."""
    port = await peers.tcp(idle)
    result = await probe(request(port, address="localhost"), tcp_settings(ip_protocol="ip4"))
    assert result.ok, result.error
    assert result.phases["resolve"] >= 0


# --------------------------------------------------------------------------------------- hang cases


async def test_silent_server_expect_is_bounded_by_timeout(peers: Any, check_factory: Any, race: Any) -> None:
    """A server that accepts and never sends costs the check's timeout, and a concurrent probe is not delayed."""
    silent = await peers.tcp(idle)
    talkative_port = await peers.tcp(idle)
    hung = check_factory("tcp", tcp_settings(query_response=[{"expect": "^220 "}]), port=silent, timeout=0.6)
    fast = check_factory("tcp", TCPSettings(), port=talkative_port, timeout=0.6, name="fast")
    outcome = await race(hung, fast)
    assert not outcome.hung.ok
    assert outcome.hung.error == "timeout after 600ms in step 1: expected /^220 /, got nothing"
    assert 0.55 <= outcome.hung_elapsed < 0.9
    assert outcome.fast.ok, outcome.fast.error
    assert outcome.fast_elapsed < 0.3


async def test_silent_server_under_plain_asyncio_timeout(peers: Any) -> None:
    """The probe itself is cancellable: asyncio.timeout around it ends a hung expect promptly."""
    port = await peers.tcp(idle)
    settings = tcp_settings(query_response=[{"expect": "never"}])
    started = time.perf_counter()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.4):
            await probe(request(port), settings)
    assert time.perf_counter() - started < 0.6


async def test_tls_handshake_to_silent_server_is_bounded(peers: Any, check_factory: Any, runner: Any) -> None:
    """A TLS handshake the server never answers costs only the timeout (not ssl's 60 s default)."""
    port = await peers.tcp(idle)
    settings = tcp_settings(tls=True, tls_config={"insecure_skip_verify": True})
    started = time.perf_counter()
    result = await runner.run(check_factory("tcp", settings, port=port, timeout=0.5))
    elapsed = time.perf_counter() - started
    assert result.error == "timeout after 500ms in TLS handshake"
    assert 0.45 <= elapsed < 0.8
    assert result.duration == pytest.approx(elapsed, abs=0.05)


# ----------------------------------------------------------------------------- garbage and floods


async def test_garbage_instead_of_banner_names_step_and_data(peers: Any) -> None:
    """Bytes that do not match the expect regex fail with the step number, the pattern and what arrived."""
    garbage = b"\x00\xffNOT-SSH garbage\r\n"

    async def send_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(garbage)
        await writer.drain()

    port = await peers.tcp(send_garbage)
    result = await probe(request(port), tcp_settings(query_response=[{"expect": r"^SSH-2\.0-"}]))
    assert not result.ok
    shown = garbage.decode("utf-8", "replace")
    assert result.error == rf"step 1: expected /^SSH-2\.0-/, got {shown!r}"


async def test_eof_before_expected_text(peers: Any) -> None:
    """A peer that closes without sending anything fails the expect step with an empty 'got'."""

    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    port = await peers.tcp(close_at_once)
    result = await probe(request(port), tcp_settings(query_response=[{"expect": "^220"}]))
    assert not result.ok
    assert result.error == "step 1: expected /^220/, got ''"


async def test_flooding_server_reads_are_capped_and_memory_bounded(peers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32 MiB flood: the probe reads exactly max_read_bytes, fails, and allocates far less."""
    chunk = b"x" * 65536
    sent = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        for _ in range(512):
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)

    consumed = 0
    real_read = asyncio.StreamReader.read

    async def counting_read(self: asyncio.StreamReader, n: int = -1) -> bytes:
        nonlocal consumed
        data = await real_read(self, n)
        consumed += len(data)
        return data

    monkeypatch.setattr(asyncio.StreamReader, "read", counting_read)
    port = await peers.tcp(flood)
    limit = 65536
    settings = tcp_settings(query_response=[{"expect": "NEVER"}], max_read_bytes=limit)
    tracemalloc.start()
    try:
        started = time.perf_counter()
        result = await probe(request(port), settings)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.ok
    assert result.error == f"step 1: expected /NEVER/, got {'x' * 80!r}"
    assert consumed == limit
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while the probe should hold about {limit}"
    assert elapsed < 1.0
    assert sent < 512 * len(chunk)  # the probe hung up long before the flood was over


async def test_large_read_limit_flood_does_not_rescan_quadratically(peers: Any) -> None:
    """With max_read_bytes 8 MiB, a non-matching flood is rejected fast (no rescan per 4 KiB read)."""
    chunk = b"y" * 65536

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(chunk)
            await writer.drain()

    port = await peers.tcp(flood)
    limit = 8 * 1024 * 1024
    settings = tcp_settings(query_response=[{"expect": "NEVER"}], max_read_bytes=limit)
    started = time.perf_counter()
    result = await probe(request(port), settings)
    assert time.perf_counter() - started < 1.5  # rescanning after every 4 KiB read took over 3 s
    assert not result.ok
    assert result.error == f"step 1: expected /NEVER/, got {'y' * 80!r}"


# ---------------------------------------------------------------------------------------- dialogue


async def test_smtp_like_dialogue(peers: Any) -> None:
    """A send/expect dialogue with anchored patterns: every step's line reaches the server in order."""
    received: list[bytes] = []

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mail.test ESMTP ready\r\n")
        received.append(await reader.readline())
        writer.write(b"250-mail.test\r\n250 SIZE 1000\r\n")
        received.append(await reader.readline())
        writer.write(b"221 bye\r\n")
        await writer.drain()

    port = await peers.tcp(smtp)
    settings = tcp_settings(
        query_response=[
            {"expect": "^220 ", "send": "EHLO monitor.test\r\n"},
            {"expect": "^250 SIZE", "send": "QUIT\r\n"},
            {"expect": "^221 "},
        ]
    )
    result = await probe(request(port), settings)
    assert result.ok, result.error
    assert received == [b"EHLO monitor.test\r\n", b"QUIT\r\n"]


async def test_dialogue_failure_names_the_failing_step(peers: Any) -> None:
    """When the second expect does not match, the error names step 2 and shows the reply."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        await reader.readline()
        writer.write(b"550 go away\r\n")
        await writer.drain()

    port = await peers.tcp(refuse)
    settings = tcp_settings(query_response=[{"expect": "^220", "send": "HELO x\r\n"}, {"expect": "^250"}])
    result = await probe(request(port), settings)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("step 2: expected /^250/, got ")
    assert "550 go away" in result.error


async def test_send_only_step_writes_bytes_as_given(peers: Any) -> None:
    """A send step without expect writes its text unchanged (no newline added)."""
    got = asyncio.get_running_loop().create_future()

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.read())

    port = await peers.tcp(collect)
    result = await probe(request(port), tcp_settings(query_response=[{"send": "PING"}]))
    assert result.ok, result.error
    assert await asyncio.wait_for(got, 1) == b"PING"


def test_invalid_expect_regex_is_a_config_error() -> None:
    """An expect pattern that does not compile is rejected when the settings are validated."""
    with pytest.raises(ValueError, match="expect"):
        Step(expect="(unclosed")


# --------------------------------------------------------------------------------------------- TLS


async def test_tls_insecure_skip_verify_reports_certificate(peers: Any, pki: Any) -> None:
    """insecure_skip_verify accepts a self-signed chain and still reports the certificate facts."""
    port = await peers.tcp(idle, ssl_context=pki.leaf.server_context())
    settings = tcp_settings(tls=True, tls_config={"insecure_skip_verify": True})
    result = await probe(request(port), settings)
    assert result.ok, result.error
    assert result.values[TLS_NOT_AFTER] == pki.leaf.not_after
    assert result.info["tls_subject"] == pki.server_name
    assert result.info["tls_issuer"] == "Probe Test CA"
    assert result.info["tls_version"].startswith("TLSv1.")
    assert "tls" in result.phases


async def test_tls_verified_with_ca_file(peers: Any, pki: Any) -> None:
    """Verification against the issuing CA (ca_file) passes, with SNI from the request's hostname."""
    names: list[str | None] = []
    ctx = pki.leaf.server_context()
    ctx.sni_callback = lambda _sock, name, _ctx: names.append(name)
    port = await peers.tcp(idle, ssl_context=ctx)
    settings = tcp_settings(tls=True, tls_config={"ca_file": str(pki.ca.cert_file)})
    result = await probe(request(port, hostname=pki.server_name), settings)
    assert result.ok, result.error
    assert names == [pki.server_name]
    assert result.values[TLS_NOT_AFTER] == pki.leaf.not_after
    assert result.values[TLS_EARLIEST_NOT_AFTER] == min(pki.leaf.not_after, pki.ca.not_after)
    assert result.info["tls_chain_length"] == "2"


async def test_tls_without_trusted_ca_fails_verification(peers: Any, pki: Any) -> None:
    """Without the CA (system store only) the self-signed chain fails verification."""
    port = await peers.tcp(idle, ssl_context=pki.leaf.server_context())
    result = await probe(request(port), tcp_settings(tls=True))
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("tls certificate verification failed")


async def test_tls_with_unrelated_ca_fails_verification(peers: Any, pki: Any) -> None:
    """A ca_file that did not sign the server certificate fails verification."""
    port = await peers.tcp(idle, ssl_context=pki.leaf.server_context())
    settings = tcp_settings(tls=True, tls_config={"ca_file": str(pki.other_ca.cert_file)})
    result = await probe(request(port), settings)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("tls certificate verification failed")


async def test_tls_server_name_mismatch_fails(peers: Any, pki: Any) -> None:
    """tls_config.server_name not in the certificate fails hostname verification."""
    port = await peers.tcp(idle, ssl_context=pki.leaf.server_context())
    settings = tcp_settings(tls=True, tls_config={"ca_file": str(pki.ca.cert_file), "server_name": "wrong.test"})
    result = await probe(request(port), settings)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("tls certificate verification failed")
    assert "wrong.test" in result.error


async def test_tls_to_plain_server_fails_handshake(peers: Any) -> None:
    """A peer answering the ClientHello with plain text fails with a TLS handshake error."""

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"220 this is not TLS\r\n" * 4)
        await writer.drain()
        await reader.read()

    port = await peers.tcp(plain)
    result = await probe(request(port), tcp_settings(tls=True, tls_config={"insecure_skip_verify": True}))
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith(("TLS handshake failed", "connection reset"))


async def test_starttls_step_upgrades_and_continues(peers: Any, pki: Any) -> None:
    """A starttls step upgrades the connection mid-dialogue; later steps run inside TLS."""
    server_ctx = pki.leaf.server_context()
    inside_tls: list[bytes] = []

    async def starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        assert await reader.readline() == b"STARTTLS\r\n"
        writer.write(b"220 go ahead\r\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        inside_tls.append(await reader.readline())
        writer.write(b"250 secure\r\n")
        await writer.drain()
        await reader.read()

    port = await peers.tcp(starttls)
    settings = tcp_settings(
        tls_config={"ca_file": str(pki.ca.cert_file)},
        query_response=[
            {"expect": "^220 ready", "send": "STARTTLS\r\n"},
            {"expect": "^220 go ahead", "starttls": True},
            {"send": "NOOP\r\n"},  # within a step: expect, then send, then starttls
            {"expect": "^250 secure"},
        ],
    )
    result = await probe(request(port, hostname=pki.server_name), settings)
    assert result.ok, result.error
    assert inside_tls == [b"NOOP\r\n"]
    assert result.values[TLS_NOT_AFTER] == pki.leaf.not_after


async def test_plaintext_sent_before_starttls_does_not_count_after_it(peers: Any, pki: Any) -> None:
    """Plaintext sent before STARTTLS cannot satisfy an expect after the upgrade (injection)."""
    server_ctx = pki.leaf.server_context()

    async def injecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n")
        await reader.readline()
        writer.write(b"220 go ahead\r\n250 secure\r\n")  # the second line is plaintext, before TLS
        await writer.drain()
        await writer.start_tls(server_ctx)
        await reader.readline()
        writer.write(b"554 not what you expected\r\n")
        await writer.drain()

    port = await peers.tcp(injecting)
    settings = tcp_settings(
        tls_config={"ca_file": str(pki.ca.cert_file)},
        query_response=[
            {"expect": "^220 ready", "send": "STARTTLS\r\n"},
            {"expect": "^220 go ahead", "starttls": True},
            {"send": "NOOP\r\n"},
            {"expect": "^250 secure"},
        ],
    )
    result = await probe(request(port, hostname=pki.server_name), settings)
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("step 4: expected /^250 secure/, got ")
    assert "554 not what you expected" in result.error


async def test_mutual_tls_client_certificate(peers: Any, pki: Any) -> None:
    """A server requiring a client certificate accepts cert_file/key_file; without them the dialogue fails."""

    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK mutual\r\n")
        await writer.drain()
        await reader.read()

    port = await peers.tcp(banner, ssl_context=pki.mutual_tls_context())
    tls_config: dict[str, Any] = {"ca_file": str(pki.ca.cert_file)}
    steps = [{"expect": "^\\+OK mutual"}]
    without = await probe(request(port), tcp_settings(tls=True, tls_config=tls_config, query_response=steps))
    assert not without.ok
    assert without.error == r"step 1: expected /^\+OK mutual/, got ''"
    with_cert = {**tls_config, "cert_file": str(pki.client.cert_file), "key_file": str(pki.client.key_file)}
    result = await probe(request(port), tcp_settings(tls=True, tls_config=with_cert, query_response=steps))
    assert result.ok, result.error
