"""The daemon's garbage-collector settings: the loaded config's heap is frozen, a reload releases it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from monitor import heap


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


def test_full_collections_are_rare() -> None:
    heap.tune_collector()
    assert gc.get_threshold()[2] == heap.FULL_COLLECTION_EVERY


def test_settle_freezes_and_the_next_settle_releases() -> None:
    """After settle() the collector skips what was on the heap (a cycle there survives gc.collect());
    the next settle() (a reload) lets it go."""
    node = Node()
    ref = weakref.ref(node)
    heap.settle()
    assert gc.get_freeze_count() > 1000
    del node
    gc.collect()
    assert ref() is not None  # frozen: not scanned
    heap.settle()
    assert ref() is None
