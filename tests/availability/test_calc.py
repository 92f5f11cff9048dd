"""Time-weighted availability on hand-made interval sets: months in JST, maintenance, gaps, corrections,
office hours, DEGRADED policy, outages and their root causes."""

from __future__ import annotations

import datetime as dt

import pytest

from monitor.availability.calc import StateSpan, compute
from monitor.availability.periods import JST, month_span, parse_month, service_spans
from monitor.config.response_model import OfficeHours

MIN = 60.0


def at(text: str) -> float:
    """A JST wall-clock time as UTC epoch seconds."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=JST).timestamp()


@pytest.mark.parametrize(
    ("month", "days", "budget_minutes"),
    [("2026-02", 28, 40.32), ("2028-02", 29, 41.76), ("2026-11", 30, 43.2), ("2026-12", 31, 44.64)],
)
def test_month_lengths_and_the_999_budget(month: str, days: int, budget_minutes: float) -> None:
    """A JST calendar month has its real length; 0.1% of it is the 99.9% error budget (43.2 min in 30 days)."""
    start, end = month_span(*parse_month(month))
    assert (end - start) / 86400 == days
    assert (end - start) * 0.001 / MIN == pytest.approx(budget_minutes)


def test_jst_month_starts_at_tokyo_midnight_not_utc() -> None:
    """November 2026 starts at 2026-10-31 15:00 UTC: an outage at 23:00 UTC on Oct 31 belongs to November."""
    start, _ = month_span(2026, 11)
    assert dt.datetime.fromtimestamp(start, dt.UTC) == dt.datetime(2026, 10, 31, 15, 0, tzinfo=dt.UTC)
    outage_utc = dt.datetime(2026, 10, 31, 23, 0, tzinfo=dt.UTC).timestamp()
    spans = [
        StateSpan("up", start - 86400, outage_utc),
        StateSpan("down", outage_utc, outage_utc + 10 * MIN),
        StateSpan("up", outage_utc + 10 * MIN, None),
    ]
    nov = compute(spans, month_span(2026, 11))
    assert nov.downtime_seconds == 10 * MIN and len(nov.outages) == 1


def test_outage_spanning_the_month_boundary_is_split() -> None:
    """An outage from Nov 30 23:50 to Dec 1 00:20 JST counts 10 minutes in November and 20 in December."""
    spans = [StateSpan("up", at("2026-11-01T00:00"), at("2026-11-30T23:50")), StateSpan("down", at("2026-11-30T23:50"), at("2026-12-01T00:20")),
             StateSpan("up", at("2026-12-01T00:20"), None)]  # fmt: skip
    nov, dec = compute(spans, month_span(2026, 11)), compute(spans, (month_span(2026, 12)[0], at("2026-12-02T00:00")))
    assert (nov.downtime_seconds, dec.downtime_seconds) == (10 * MIN, 20 * MIN)
    assert nov.availability == pytest.approx(1 - 10 / (30 * 24 * 60))


def test_maintenance_is_taken_out_of_the_service_time() -> None:
    """Two hours of planned maintenance are neither downtime nor service time."""
    start, end = month_span(2026, 11)
    spans = [StateSpan("up", start, at("2026-11-10T01:00")), StateSpan("maintenance", at("2026-11-10T01:00"), at("2026-11-10T03:00")),
             StateSpan("down", at("2026-11-10T03:00"), at("2026-11-10T03:30")), StateSpan("up", at("2026-11-10T03:30"), None)]  # fmt: skip
    result = compute(spans, (start, end))
    assert result.maintenance_seconds == 120 * MIN and result.downtime_seconds == 30 * MIN
    assert result.planned_seconds == 30 * 86400 - 120 * MIN
    assert result.availability == pytest.approx(1 - 30 * MIN / (30 * 86400 - 120 * MIN))


def test_correction_reclassifies_an_outage_as_planned() -> None:
    """An outage later corrected to planned (e.g. unannounced but agreed work) moves from downtime to maintenance."""
    start, end = month_span(2026, 11)
    spans = [StateSpan("up", start, at("2026-11-05T10:00")), StateSpan("down", at("2026-11-05T10:00"), at("2026-11-05T11:00")),
             StateSpan("up", at("2026-11-05T11:00"), None)]  # fmt: skip
    result = compute(spans, (start, end), corrections=[(at("2026-11-05T10:00"), at("2026-11-05T10:40"))])
    assert (result.downtime_seconds, result.maintenance_seconds) == (20 * MIN, 40 * MIN)


def test_monitoring_gap_is_reported_not_counted_as_up() -> None:
    """A 3 hour daemon outage (no intervals) is a gap: out of the planned time, and the worst case counts it down."""
    start, end = month_span(2026, 11)
    spans = [StateSpan("up", start, at("2026-11-20T00:00")), StateSpan("up", at("2026-11-20T03:00"), None)]
    result = compute(spans, (start, end))
    assert result.gap_seconds == 180 * MIN and result.downtime_seconds == 0
    assert result.availability == 1.0
    assert result.worst_case == pytest.approx(1 - 180 * MIN / (30 * 86400))
    unknown = compute(
        [StateSpan("unknown", start, at("2026-11-01T00:10")), StateSpan("up", at("2026-11-01T00:10"), None)],
        (start, end),
    )
    assert unknown.gap_seconds == 10 * MIN


def test_degraded_counts_as_up_unless_the_slo_says_down() -> None:
    """DEGRADED time is up by default, downtime when the SLO counts it so."""
    start, end = month_span(2026, 11)
    spans = [StateSpan("degraded", start, start + 3600), StateSpan("up", start + 3600, None)]
    assert compute(spans, (start, end)).downtime_seconds == 0
    assert compute(spans, (start, end), degraded_up=False).downtime_seconds == 3600


def test_down_then_unreachable_is_one_outage_with_its_root_cause() -> None:
    """Adjacent DOWN and UNREACHABLE spans are one outage; its root cause is kept; a gap ends an outage."""
    t = at("2026-11-03T09:00")
    spans = [StateSpan("up", t - 3600, t), StateSpan("down", t, t + 60), StateSpan("unreachable", t + 60, t + 600, "pref13-edge"),
             StateSpan("up", t + 600, t + 1200), StateSpan("down", t + 1200, t + 1300)]  # fmt: skip
    result = compute(spans, (t - 3600, t + 1300))
    assert [(o.seconds, o.root_causes) for o in result.outages] == [(600, ("pref13-edge",)), (100, ())]
    assert result.longest_outage_seconds == 600 and result.mttr_seconds == 350
    assert result.mtbf_seconds == pytest.approx((result.planned_seconds - 700) / 2)


def test_office_hours_service_only_counts_working_hours() -> None:
    """With office hours 08:30-17:45 on working days, a night outage costs nothing; a holiday is no service time."""
    hours = OfficeHours()
    start, end = month_span(2026, 11)
    spans_ = service_spans(start, end, hours)
    # November 2026: 21 weekdays, minus Nov 3 (Culture Day) and Nov 23 (Labour Thanksgiving) = 19 working days
    assert len(spans_) == 19 and sum(b - a for a, b in spans_) == 19 * (9 * 3600 + 15 * 60)
    night = [StateSpan("up", start, at("2026-11-04T02:00")), StateSpan("down", at("2026-11-04T02:00"), at("2026-11-04T09:00")),
             StateSpan("up", at("2026-11-04T09:00"), None)]  # fmt: skip
    result = compute(night, (start, end), service_hours=spans_)
    assert result.downtime_seconds == 30 * MIN  # 08:30-09:00 only
    assert [o.seconds for o in result.outages] == [30 * MIN]


def test_current_month_counts_only_until_now() -> None:
    """For the month in progress the period ends at "now": the future is neither up nor a gap."""
    start, _ = month_span(2026, 11)
    now = start + 10 * 86400
    result = compute([StateSpan("up", start, None)], (start, now))
    assert result.service_seconds == 10 * 86400 and result.gap_seconds == 0 and result.availability == 1.0


def test_parse_month_errors() -> None:
    """A month that is not YYYY-MM is refused with an example."""
    for bad in ("2026-13", "26/11", "2026"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)
