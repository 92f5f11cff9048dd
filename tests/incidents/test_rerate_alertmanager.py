"""A re-rated incident as a real Alertmanager sees it (issue 18 point 5): severity is a label, so the
re-rated alert is a new one and the old one must end with it; RESOLVED ends the one Alertmanager has.
The real manager, store, outbox worker and Alertmanager notifier; prometheus-alertmanager on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.incidents.outbox import OutboxMetrics, OutboxWorker
from monitor.notifiers.registry import create_notifiers
from tests.conftest import Loader
from tests.e2e.peers import alertmanager, alertmanager_available, am_alerts, wait_for
from tests.incidents.world import World, make_world

pytestmark = pytest.mark.skipif(not alertmanager_available(), reason="prometheus-alertmanager not installed")


def active(am: str) -> list[tuple[str, str]]:
    return sorted((a["labels"]["target"], a["labels"]["severity"]) for a in am_alerts(am, active_only=True))


async def step(world: World, worker: OutboxWorker) -> None:
    """Now, on the real clock (Alertmanager judges endsAt by it): timers, then delivery."""
    world.clock.t = time.time()
    await world.manager.tick()
    await worker.deliver_due()


async def test_alertmanager_sees_one_alert_per_link_with_the_current_severity(
    load_yaml_config: Loader, tmp_path: Path
) -> None:
    with alertmanager(tmp_path) as am:
        world = await make_world(load_yaml_config, tmp_path, group_wait="0s", alertmanager=am, start=time.time())
        notifiers = create_notifiers(world.engine.inventory.response.notifiers)
        worker = OutboxWorker(world.store, world.clock, lambda: notifiers, OutboxMetrics(CollectorRegistry()))
        try:
            await world.fail("c-primary")
            await step(world, worker)
            wait_for(lambda: active(am) == [("c-primary", "minor")], 10, what="the minor alert")
            await world.fail("c-backup")
            await step(world, worker)
            wait_for(lambda: active(am) == [("c-primary", "major")], 10, what="only the major alert")
            await world.recover("c-backup")  # minor again, but held: then everything recovers
            await world.recover("c-primary")
            await step(world, worker)
            wait_for(lambda: active(am) == [], 10, what="no alert left firing")
        finally:
            for notifier in notifiers.values():
                await notifier.close()
            await world.store.close(now=time.time())
