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


@pytest.mark.parametrize("count", [2, 3])
def test_a_security_connection_and_its_organisations_targets_share_a_shard(count: int) -> None:
    """The disconnect playbook runs where the connection's interface check is and verifies the cut on the
    organisation's targets: they must be probed there, even when they hang off another prefecture."""
    import dataclasses

    whole = load_config(ROOT / "config" / "monitor.yml").inventory
    assert whole.security is not None
    (connection, *_) = whole.security.connections
    far = sorted(t for t in whole.targets if t.startswith("lgwan-47-"))[:1]  # another prefecture's circuit
    moved = connection.model_copy(update={"targets": [*connection.targets, *far]})
    whole = dataclasses.replace(whole, security=whole.security.model_copy(update={"connections": [moved]}))
    homes = [i for i in range(1, count + 1) if connection.check in shard_inventory(whole, i, count).checks]
    owner = next(i for i in homes if shard_inventory(whole, i, count).checks[connection.check].exported)
    part = shard_inventory(whole, owner, count)
    assert part.security is not None and [c.name for c in part.security.connections] == [connection.name]
    for name in moved.targets:
        assert name in part.targets and name not in part.context, name
    assert part.estate is whole and whole.estate is whole  # names in the config resolve against all of it
