"""What the detectors keep is bounded by their thresholds and the minute's seconds, not by the rate of
flows: at 50,000 records/s the bytes detector used to keep every flow of the last minute (3 million) and
a scan of a /16 every destination. The figures the detectors report must stay what they were."""

from __future__ import annotations

import itertools
import random
from ipaddress import ip_address

from monitor.config.flows_model import BytesPerHost, Disallowed, Scan
from monitor.flows.detectors import BytesDetector, DisallowedDetector, ScanDetector, _Bytes, _Window, key
from tests.flows.conftest import flow

SRC = key(flow().src)


def _kept(state: _Bytes) -> int:
    return sum(len(heap) for _, heap in state.buckets.values())


def test_bytes_window_keeps_per_second_buckets_and_the_exact_minute_total() -> None:
    keep = 5
    state = _Bytes(keep)
    rng = random.Random(7)
    records = [flow(octets=rng.randrange(1, 10_000), at=1_000_000.0 + i / 1000) for i in range(120_000)]
    for record in records:
        total = state.add(record)
    # 120 s of flows at 1,000/s: the window is the minute before the newest flow's second
    newest = int(records[-1].first_seen)
    expected = sum(r.octets for r in records if int(r.first_seen) > newest - 60)
    assert total == expected
    assert len(state.buckets) <= 60 and _kept(state) <= 60 * keep
    # flows with `keep` larger ones in newer seconds are dropped: a few times `keep`, not `keep` a second
    assert _kept(state) <= 10 * keep
    in_window = [r for r in records if int(r.first_seen) > newest - 60]
    assert [r.octets for r in state.largest()] == sorted((r.octets for r in in_window), reverse=True)[:keep]


def test_a_flow_that_started_before_the_window_is_not_counted() -> None:
    state = _Bytes(3)
    state.add(flow(octets=100, at=1_000_100.0))
    assert state.add(flow(octets=5_000, at=1_000_030.0)) == 100  # 70 s before the newest: outside
    assert state.add(flow(octets=50, at=1_000_090.0)) == 150  # late but inside: counted


def test_bytes_detector_evidence_is_the_largest_flows() -> None:
    detector = BytesDetector("city-a", BytesPerHost(bytes_per_minute=1_000_000), keep=3)
    findings = []
    for i, octets in enumerate([10, 900_000, 20, 300_000, 30, 40]):
        findings = detector.observe(flow(octets=octets, at=1_000_000.0 + i), SRC, None, False)
    assert findings and [f["bytes"] for f in findings[0].flows] == [900_000, 300_000, 40]


def test_a_scan_window_keeps_at_most_its_threshold_of_keys() -> None:
    window = _Window(keep=20, cap=32)
    for i in range(65_536):  # a /16 swept within 6.5 s
        window.add(i, 1_000_000.0 + i / 10_000, flow(at=1_000_000.0 + i / 10_000))
    assert len(window.seen) == 32 and window.estimate() == 32 and len(window.flows) == 20


def test_a_scan_is_still_found_and_expires_by_the_flows_clock() -> None:
    detector = ScanDetector("city-a", Scan(hosts_per_minute=100, ports_per_minute=None), keep=10)
    found = []
    for i in range(5_000):
        found += detector.observe(
            flow(dst=f"10.200.{i // 250}.{i % 250 + 1}", at=1_000_000.0 + i / 100), SRC, None, False
        )
    assert found and found[0].measured == 100 and found[0].rule == "scan_hosts"
    # one new host every 2 s afterwards: 30 within a minute, below the threshold once the scan has aged out
    last = []
    for i in range(60):
        last = detector.observe(flow(dst=f"10.201.0.{i + 1}", at=1_000_100.0 + 2 * i), SRC, None, False)
    assert last == []
    window = detector._hosts.get(next(iter(detector._hosts._items)))
    assert window.estimate() <= 31


def test_a_source_over_its_threshold_is_reported_once_a_second_not_once_a_flow() -> None:
    """Every probe of a scan used to build its own finding (evidence, summary), all but one dropped within
    `repeat`: an attack cost half again per record. Now one per REPORT_GRAIN of flow time and detector,
    each with the latest evidence, and the first at the flow that crossed the threshold."""
    scan = ScanDetector("city-a", Scan(hosts_per_minute=32, ports_per_minute=None), keep=5)
    disallowed = DisallowedDetector("city-a", Disallowed(count=1), keep=5, enabled=True)
    scans, outside = [], []
    for i in range(2_000):  # 2,000 hosts on tcp/445 within 2.5 s
        record = flow(dst=f"10.200.{i // 250}.{i % 250 + 1}", dport=445, at=1_000_000.0 + i / 800)
        scans.append(scan.observe(record, SRC, None, False))
        outside.append(disallowed.observe(record, SRC, None, False))
    reported = [i for i, found in enumerate(scans) if found]
    assert reported[0] == 31  # the 32nd host
    assert len(reported) == 3 and all(b - a >= 800 for a, b in itertools.pairwise(reported))
    last = reported[-1]  # its evidence ends with the flow it was reported at
    assert scans[last][0].records[-1].dst == ip_address(f"10.200.{last // 250}.{last % 250 + 1}")
    assert [i for i, found in enumerate(outside) if found] == [0, 800, 1600]
    # flows arriving out of order (an earlier flow time) are not held back by a later report
    assert disallowed.observe(flow(dport=445, at=999_990.0), SRC, None, False)


def test_bytes_evidence_stays_exact_when_flows_shrink_or_arrive_late() -> None:
    """The pruning keeps what can still be evidence: older larger flows while no newer ones outrank them, and
    a late flow into an older second."""
    keep = 3
    state = _Bytes(keep)
    records = [flow(octets=10_000 - i, at=1_000_000.0 + i / 10) for i in range(600)]  # shrinking: nothing prunes
    records.append(flow(octets=20_000, at=1_000_010.0))  # late, into an older second
    records += [flow(octets=5, at=1_000_060.0 + i / 10) for i in range(20)]
    for record in records:
        state.add(record)
    newest = int(records[-1].first_seen)
    in_window = [r for r in records if int(r.first_seen) > newest - 60]
    assert [r.octets for r in state.largest()] == sorted((r.octets for r in in_window), reverse=True)[:keep]
