"""A shard's status page shows only the public services whose member services it owns entirely: over its own
members alone, "pref-net" (47 prefectures, split over the shards) read "operational" on one shard while the
other shard's prefectures were down, and "outage" on the other while half the country was up."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cluster.sharding import shard_inventory
from monitor.config.loader import load_config
from monitor.status.notices import members, public_services, split_by_shards

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("count", [2, 3])
def test_a_shard_shows_the_public_services_it_sees_whole_and_names_the_rest(count: int) -> None:
    whole = load_config(ROOT / "config" / "monitor.yml").inventory
    everything = {p.id for p in public_services(whole)}
    assert split_by_shards(whole) == [] and len(everything) >= 3
    shown_on: dict[str, list[int]] = {}
    for index in range(1, count + 1):
        part = shard_inventory(whole, index, count)
        shown = public_services(part)
        for public in shown:
            assert set(members(public, whole)) <= set(part.services)  # every member's state is known here
            shown_on.setdefault(public.id, []).append(index)
        assert {p.id for p in shown} | set(split_by_shards(part)) == everything
    split = everything - set(shown_on)
    assert "pref-net" in split and "lgwan" in split  # one row per prefecture: on every shard
    assert all(len(on) == 1 for on in shown_on.values())  # a service's members stay on one shard
    assert shown_on, "some public services are whole on one shard"
