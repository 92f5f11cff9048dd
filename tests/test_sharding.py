"""--shard i/N: every check and service owned by exactly one shard, groups kept together, context for root cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cluster.sharding import parse_shard, shard_inventory, shard_of
from monitor.config.loader import load_config

ROOT = Path(__file__).resolve().parent.parent


def test_shard_argument() -> None:
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="i/N"):
            parse_shard(bad)


def test_rendezvous_hashing_moves_only_what_must_move() -> None:
    keys = [f"pref{n:02d}-edge" for n in range(1, 48)]
    two = {k: shard_of(k, 2) for k in keys}
    three = {k: shard_of(k, 3) for k in keys}
    assert set(two.values()) == {1, 2}
    assert all(three[k] == two[k] for k in keys if three[k] != 3)  # growing to 3: keys move only to the new one


@pytest.mark.parametrize("count", [2, 3])
def test_the_example_estate_splits_into_disjoint_shares_whose_union_is_everything(count: int) -> None:
    whole = load_config(ROOT / "config" / "monitor.yml").inventory
    owned: dict[str, int] = {}
    services: dict[str, int] = {}
    for index in range(1, count + 1):
        part = shard_inventory(whole, index, count)
        for cid, check in part.checks.items():
            if check.exported:
                assert cid not in owned, f"{cid} in shards {owned[cid]} and {index}"
                owned[cid] = index
            else:  # context: an ancestor of one of this shard's targets, for root cause only
                assert check.target.name in part.context
        for name in part.services:
            assert name not in services
            services[name] = index
        for target in part.targets.values():  # a target's parent is always known to its shard
            assert target.parent is None or target.parent in part.targets
    assert set(owned) == set(whole.checks) and set(services) == set(whole.services)
    shares = [sum(1 for s in owned.values() if s == i) for i in range(1, count + 1)]
    assert min(shares) > len(whole.checks) / count / 2  # roughly balanced
    # a prefecture stays together: its router, switch, firewall, access point and circuits
    for code in ("01", "13", "47"):
        names = [c for c in whole.checks if c.startswith((f"pref{code}-", f"lgwan-{code}-"))]
        assert len({owned[c] for c in names}) == 1
