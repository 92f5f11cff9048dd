"""Garbage-collector settings for a long-running daemon with a large, stable heap.

At 10,000 checks the daemon holds ~300,000 objects the cyclic collector tracks (the inventory, probe
and state machinery, the recent results of every check). With CPython's defaults a full collection,
0.2-0.4 s with the interpreter lock held, ran every ~6 s at 1,000 probes/s: the main source of
scheduling lag. So the heap as it stands after loading a config is frozen (the collector no longer
scans it; it lives as long as the config does), and a full collection waits for 1,000 middle-generation
collections instead of 10 (about once an hour at 1,000 probes/s). Reference counting frees almost all
garbage anyway; full collections only find reference cycles, which are rare and small here.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_EVERY = 1000  # middle-generation collections (CPython's default: 10)


def tune_collector() -> None:
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def settle() -> None:
    """Freeze what a (re)loaded config left on the heap. The previous freeze is undone first, so what
    the old config held can be collected now."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def for_batch_run() -> None:
    """A command that builds a month of intervals (millions of objects) and exits: the cyclic
    collector's passes over them took a quarter of a monthly report's time and freed nothing that
    reference counting does not."""
    gc.disable()
