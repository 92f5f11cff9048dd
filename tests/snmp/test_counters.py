"""Counter arithmetic between polls: 32-bit wraps, 64-bit resets, reboots versus sysUpTime wraps."""

from __future__ import annotations

from probes.snmp.counters import WRAP32, DeviceState, count, observe_uptime, uptime_event, uptime_seconds, utilisation


def test_32_bit_wrap_extends_the_counter() -> None:
    """A 32-bit counter going from near 2^32 to a small value adds the real increase."""
    state = DeviceState()
    assert count(state, 1, "in_octets", WRAP32 - 100, 32, 0.0) == (WRAP32 - 100, None, 0.0)
    value, delta, seconds = count(state, 1, "in_octets", 50, 32, 10.0)
    assert (value, delta, seconds) == (WRAP32 + 50, 150, 10.0)
    value, delta, _ = count(state, 1, "in_octets", 1000, 32, 20.0)
    assert (value, delta) == (WRAP32 + 1000, 950)


def test_64_bit_counter_going_back_is_a_reset() -> None:
    """A 64-bit counter never wraps in practice: going back is a reset, exported as the new value."""
    state = DeviceState()
    count(state, 1, "in_octets", 10**12, 64, 0.0)
    assert count(state, 1, "in_octets", 500, 64, 10.0) == (500, None, 10.0)


def test_uptime_decrease_is_a_reboot_but_a_timeticks_wrap_is_not() -> None:
    """sysUpTime going back is a reboot, unless it matches the 497-day TimeTicks wrap."""
    assert uptime_event(None, 0.0, 100, 1.0) is None
    assert uptime_event(360_000, 0.0, 361_000, 10.0) is None
    assert uptime_event(360_000, 0.0, 200, 10.0) == "reboot"
    assert uptime_event(WRAP32 - 500, 0.0, 500, 10.0) == "wrap"  # 1000 ticks expected in 10 s
    assert uptime_event(WRAP32 - 500, 0.0, 500_000, 10.0) == "reboot"


def test_reboot_between_polls_seen_even_when_uptime_grew() -> None:
    """An uptime shorter than the time since the last poll means the device restarted in between."""
    assert uptime_event(2_000, 0.0, 30_000, 3600.0) == "reboot"  # up 5 min, last poll an hour ago


def test_observe_uptime_counts_reboots_and_resets_counters() -> None:
    """A reboot counts once, clears counters and label cache; a wrap keeps the uptime growing."""
    state = DeviceState()
    observe_uptime(state, 360_000, 0.0, 1e9)
    count(state, 1, "in_octets", 5, 32, 0.0)
    state.polls_since_labels = 3
    assert observe_uptime(state, 100, 10.0, 1e9 + 10) == "reboot"
    assert state.reboots == 1 and not state.counters and state.polls_since_labels is None
    assert state.last_reboot_at == 1e9 + 10
    state.uptime_ticks, state.uptime_at = WRAP32 - 100, 20.0
    assert observe_uptime(state, 400, 25.0, 1e9 + 25) == "wrap"
    assert uptime_seconds(state) == (WRAP32 + 400) / 100 and state.reboots == 1


def test_utilisation() -> None:
    """Utilisation is octets x 8 per second over the speed; unknown without a previous sample."""
    assert utilisation(125_000_000, 10.0, 1e9) == 0.1
    assert utilisation(None, 10.0, 1e9) is None
    assert utilisation(100, 10.0, 0.0) is None
