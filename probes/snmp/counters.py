"""Per-device poll state: counters across polls, 32-bit wraps, reboots, utilisation. Pure, no I/O.

- 64-bit counters (ifHC*) are exported as the agent reports them; Prometheus handles their resets.
- 32-bit counters wrap at 2^32, which Prometheus would read as a reset (and lose 4 GB per wrap at
  1 Gb/s every 34 s). So they are extended: each poll adds (new - old) mod 2^32. The exported value
  is therefore congruent to the agent's modulo 2^32, and equal to it until the first wrap.
- A reboot is an event, not a wrap: sysUpTime going backwards (or an uptime shorter than the time
  since our previous poll) counts a reboot, resets the extended counters and skips one utilisation
  sample. sysUpTime itself is a 32-bit TimeTicks that wraps after 497 days; a decrease that matches
  the expected wrap within a tolerance is a wrap, not a reboot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WRAP32 = 2**32
UPTIME_TOLERANCE_TICKS = 1500  # 15 s: agents' clocks and our poll timing differ a little


@dataclass(slots=True)
class Track:
    raw: int  # last value read from the agent
    value: int  # exported value (extended past 32-bit wraps)
    at: float  # monotonic time of the read


@dataclass(slots=True)
class IfLabels:
    index: int
    name: str  # ifName, else ifDescr
    descr: str
    alias: str
    type: int
    speed_bps: float  # from ifHighSpeed (Mb/s) when it is set, else ifSpeed
    series_labels: tuple[tuple[str, str], ...] = ()  # built once per label refresh: the metrics cache keys on it
    in_labels: tuple[tuple[str, str], ...] = ()  # ... plus direction="in" (utilisation)
    out_labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        self.series_labels = (("if_index", str(self.index)), ("if_name", self.name), ("if_alias", self.alias))
        self.in_labels = (*self.series_labels, ("direction", "in"))
        self.out_labels = (*self.series_labels, ("direction", "out"))


@dataclass(slots=True)
class DeviceState:
    """Everything a check remembers between polls (kept across config reloads by `inherit`)."""

    uptime_ticks: int | None = None
    uptime_at: float = 0.0  # monotonic time of the last good uptime read
    uptime_wraps: int = 0
    reboots: int = 0
    last_reboot_at: float | None = None  # wall clock
    labels: dict[int, IfLabels] = field(default_factory=dict)
    polls_since_labels: int | None = None  # None: labels never read
    hc: bool | None = None  # agent has 64-bit counters; None: not known yet
    counters: dict[tuple[int, str], Track] = field(default_factory=dict)
    ifindex: int | None = None  # interface checks: the resolved ifIndex

    def labels_stale(self, refresh_cycles: int) -> bool:
        return self.polls_since_labels is None or self.polls_since_labels >= refresh_cycles


def uptime_event(prev: int | None, prev_at: float, ticks: int, now: float) -> str | None:
    """ "reboot", "wrap" or None for a new sysUpTime reading `ticks` at monotonic time `now`."""
    if prev is None:
        return None
    elapsed = max(0.0, now - prev_at) * 100
    expected = prev + elapsed
    if ticks < prev:
        if expected >= WRAP32 and abs((expected - WRAP32) - ticks) <= UPTIME_TOLERANCE_TICKS + elapsed * 0.01:
            return "wrap"
        return "reboot"
    # the agent has been up for less time than passed since our last poll: it restarted in between
    if ticks + UPTIME_TOLERANCE_TICKS < elapsed and ticks < expected - UPTIME_TOLERANCE_TICKS:
        return "reboot"
    return None


def observe_uptime(state: DeviceState, ticks: int, now: float, wall: float) -> str | None:
    event = uptime_event(state.uptime_ticks, state.uptime_at, ticks, now)
    if event == "reboot":
        state.reboots += 1
        state.last_reboot_at = wall
        state.uptime_wraps = 0
        state.counters.clear()  # every counter restarted with the device
        state.polls_since_labels = None  # ifIndex numbering may have changed
        state.ifindex = None
    elif event == "wrap":
        state.uptime_wraps += 1
    state.uptime_ticks, state.uptime_at = ticks, now
    return event


def uptime_seconds(state: DeviceState) -> float:
    assert state.uptime_ticks is not None
    return (state.uptime_ticks + state.uptime_wraps * WRAP32) / 100.0


def count(state: DeviceState, index: int, name: str, raw: int, bits: int, now: float) -> tuple[int, int | None, float]:
    """(exported value, increase since the previous read or None, seconds since it) for a counter read `raw`."""
    key = (index, name)
    track = state.counters.get(key)
    if track is None:
        state.counters[key] = Track(raw, raw, now)
        return raw, None, 0.0
    seconds = now - track.at
    if bits == 32:
        delta: int | None = (raw - track.raw) % WRAP32
        value = track.value + delta  # type: ignore[operator]
    elif raw >= track.raw:
        delta, value = raw - track.raw, raw
    else:  # a 64-bit counter going back: a reset (counters cleared), not a wrap; no increase this time
        delta, value = None, raw
    track.raw, track.value, track.at = raw, value, now
    return value, delta, seconds


def utilisation(delta_octets: int | None, seconds: float, speed_bps: float) -> float | None:
    """Share of the interface's speed used since the previous poll (None if not computable)."""
    if delta_octets is None or seconds <= 0 or speed_bps <= 0:
        return None
    return delta_octets * 8 / seconds / speed_bps
