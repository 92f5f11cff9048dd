"""An IDS event sent to a shard that does not watch the connection is answered 421 with the shard that does,
not 422 "no connection matches" (the connection is configured: the IDS is pointed at the wrong daemon)."""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from monitor.access.auth import token_digest
from monitor.cluster.sharding import groups, shard_of
from monitor.daemon import Daemon
from monitor.http.app import build_app
from tests.conftest import Loader

TOKEN = "ids-token-for-the-shard-test"
CONFIG = """
modules:
  edge_snmp: {kind: snmp, snmp: {version: 2c, community: "${SHARD_TEST_COMMUNITY}"}}
targets:
%(targets)s
notifiers: {hook: {kind: webhook, url: "http://127.0.0.1:9/", secret: "${SHARD_TEST_COMMUNITY}"}}
contacts: {sec: {name: sec, webhook: hook}}
playbooks: {default: {levels: [{notify: [{contacts: [sec], via: [hook]}]}]}}
auth:
  tokens: [{name: ids, role: ids, token_sha256: %(digest)s}]
security:
  playbooks: {default: {page: default, action: {kind: command, argv: ["/bin/true"]}}}
  connections:
%(connections)s
"""


async def test_an_event_for_another_shards_connection_names_that_shard(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    os.environ.setdefault("SHARD_TEST_COMMUNITY", "public")
    names = [f"edge-{n}" for n in range(8)]
    targets = "\n".join(
        f"  - {{name: {n}, address: 192.0.2.{i + 1}, checks: [{{module: edge_snmp, name: up, interface: ge-0/0/1}}]}}"
        for i, n in enumerate(names)
    )
    connections = "\n".join(
        f"    - {{name: city-{i}, organisation: Org {i}, check: {n}/up, addresses: [10.{i}.0.0/16]}}"
        for i, n in enumerate(names)
    )
    loaded = load_yaml_config(CONFIG % {"targets": targets, "connections": connections, "digest": token_digest(TOKEN)})
    home = {n: shard_of(groups(loaded.inventory)[n], 2) for n in names}
    assert set(home.values()) == {1, 2}, home  # eight one-device groups land on both shards
    daemon = Daemon(loaded, data_dir=tmp_path / "data", shard=(1, 2))
    daemon.store.open(now=1.0)
    daemon.ready = True
    other = next(i for i, n in enumerate(names) if home[n] == 2)
    mine = next(i for i, n in enumerate(names) if home[n] == 1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with TestClient(TestServer(build_app(daemon.http_services()))) as client:
            for event in ({"connection": f"city-{other}"}, {"source": f"10.{other}.3.4"},
                          {"organisation": f"Org {other}"}):  # fmt: skip
                answer = await client.post("/api/v1/security-events", json={"signature": "SMB scan", **event},
                                           headers=headers)  # fmt: skip
                body = await answer.json()
                assert answer.status == 421, body
                assert body["shard"] == "2/2" and body["connection"] == f"city-{other}", body
            answer = await client.post("/api/v1/security-events", json={"signature": "x", "connection": "nowhere"},
                                       headers=headers)  # fmt: skip
            assert answer.status == 422  # configured nowhere
            answer = await client.post("/api/v1/security-events", json={"signature": "x", "source": f"10.{mine}.0.9"},
                                       headers=headers)  # fmt: skip
            assert answer.status == 201, await answer.text()  # this shard's own: an incident
    finally:
        await daemon.store.close(now=2.0)
