"""The peers a connection talks to normally, learned per connection and kept in the store so a restart
neither forgets them nor starts a new learning week. Learning starts with the first normal flow and
lasts the detector's `learning`; flows a detector reports are never learned (monitor.flows.detectors)."""

from __future__ import annotations


class PeerBaseline:
    def __init__(self, peers: dict[str, tuple[float, float]] | None = None) -> None:
        self.peers: dict[str, tuple[float, float]] = dict(peers or {})  # peer -> (first seen, last seen)
        self._dirty: set[str] = set()
        # when learning started (the first learned peer), None before any; kept, not recomputed per flow
        self.since: float | None = min((first for first, _ in self.peers.values()), default=None)

    def learning(self, now: float, period: float) -> bool:
        since = self.since
        return since is None or now - since < period

    def knows(self, peer: str) -> bool:
        return peer in self.peers

    def learn(self, peer: str, now: float) -> None:
        self.peers[peer] = (now, now)
        self._dirty.add(peer)
        if self.since is None:
            self.since = now

    def seen(self, peer: str, now: float) -> None:
        first, last = self.peers[peer]
        if now - last >= 3600.0:  # last-seen is for the operator's eye: hourly is precise enough
            self.peers[peer] = (first, now)
            self._dirty.add(peer)

    def take_dirty(self) -> dict[str, tuple[float, float]]:
        out = {p: self.peers[p] for p in self._dirty if p in self.peers}
        self._dirty.clear()
        return out
