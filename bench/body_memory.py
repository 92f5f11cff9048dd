"""Peak RSS of one HTTP probe of a body larger than its body_size_limit (issue 17 point 7).

A loopback server (in this process, an asyncio Protocol that writes from one shared buffer, so it adds
no per-request memory) sends `--body-mib` MiB; the probe runs with `body_size_limit` = `--limit-mib`
MiB and a body check (so the body has to be kept), in a child process whose VmHWM is read at the end.
The baseline is the same child without the probe. Both schemes are measured: http, and https against a
throw-away self-signed certificate (openssl).

    python -m bench.body_memory --limit-mib 64 --body-mib 96
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import subprocess
import sys
import tempfile

CHILD = r"""
import asyncio, json, sys
import uvloop
from probes.base import ProbeRequest
from probes.http import HTTPProbe, HTTPSettings

port, limit, scheme, run = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"

async def main() -> dict[str, object]:
    probe = HTTPProbe()
    out: dict[str, object] = {}
    if run:
        settings = HTTPSettings(
            scheme=scheme, body_size_limit=limit, fail_if_body_not_matches_regexp=["never-there"],
            tls_config={"insecure_skip_verify": True},
        )
        result = await probe.run(ProbeRequest("127.0.0.1", None, port, 60.0), settings)
        out = {"ok": result.ok, "error": result.error}
    await probe.close()
    return out

out = uvloop.run(main())
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        out["peak_mb"] = int(line.split()[1]) / 1024
print(json.dumps(out))
"""


class Server(asyncio.Protocol):
    body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" not in data:
            return
        assert isinstance(self.transport, asyncio.WriteTransport)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.body)}\r\nConnection: close\r\n\r\n".encode()
        self.transport.write(head)
        self.transport.write(self.body)  # uvloop/asyncio keep a reference, not a copy, when the socket is full
        self.transport.close()


def _tls_context(folder: str) -> ssl.SSLContext:
    cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


async def measure(limit_mib: int, body_mib: int) -> dict[str, object]:
    Server.body = b"x" * (body_mib * 1024 * 1024)
    loop = asyncio.get_running_loop()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        plain = await loop.create_server(Server, "127.0.0.1", 0)
        tls = await loop.create_server(Server, "127.0.0.1", 0, ssl=_tls_context(folder))
        ports = {"http": plain.sockets[0].getsockname()[1], "https": tls.sockets[0].getsockname()[1]}
        try:
            for name, scheme, run in (("baseline", "http", "0"), ("http", "http", "1"), ("https", "https", "1")):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    CHILD,
                    str(ports[scheme]),
                    str(limit_mib * 1024 * 1024),
                    scheme,
                    run,
                    stdout=subprocess.PIPE,
                )
                stdout, _ = await proc.communicate()
                figures[name] = json.loads(stdout)
        finally:
            plain.close()
            tls.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mib", type=int, default=64)
    parser.add_argument("--body-mib", type=int, default=96)
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.limit_mib, args.body_mib))
    for name, data in figures.items():
        print(f"{name:<9} {json.dumps(data)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
