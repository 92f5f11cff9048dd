"""The DEGRADED thresholds of `degraded:`: the runner applies latency itself and each measured value's
threshold as its probe kind declares it (probes.registry.limits), in a fixed order, first reason wins."""

from __future__ import annotations

import pytest

from monitor.config.model import Thresholds
from monitor.runner import degraded_reason
from probes import http, icmp, registry, tls
from probes.base import ProbeResult

NOW = 1_700_000_000.0
DAY = 86400.0


def reason(limits: Thresholds, ok: bool = True, duration: float = 0.1, **values: float) -> str | None:
    result = ProbeResult(ok=ok, duration=duration, values=dict(values))
    return degraded_reason(result, limits, NOW, registry.limits())


def test_the_kinds_declare_the_value_thresholds_in_the_order_they_apply() -> None:
    """rtt and loss_ratio (ICMP), cert_expiry (TLS, TCP and HTTP), crl_remaining (HTTP): the config keys."""
    assert [(m, rule.setting) for m, rule in registry.limits()] == [
        (icmp.RTT_AVG, "rtt"),
        (icmp.LOSS, "loss_ratio"),
        (tls.EARLIEST_NOT_AFTER, "cert_expiry"),
        (http.CRL_NEXT_UPDATE, "crl_remaining"),
    ]


@pytest.mark.parametrize(
    ("limits", "values", "expected"),
    [
        (Thresholds(rtt=0.05), {icmp.RTT_AVG.key: 0.0612}, "high round-trip time: 61.2ms (limit 50ms)"),
        (Thresholds(rtt=0.05), {icmp.RTT_AVG.key: 0.05}, None),  # at the limit: not above it
        (Thresholds(loss_ratio=0.2), {icmp.LOSS.key: 0.2}, "packet loss 20% (limit 20%)"),  # at or above
        (Thresholds(loss_ratio=0.2), {icmp.LOSS.key: 0.1}, None),
        (Thresholds(cert_expiry=14 * DAY), {tls.EARLIEST_NOT_AFTER.key: NOW + 10 * DAY},
         "TLS certificate expires in 10.0 days"),
        (Thresholds(cert_expiry=14 * DAY), {tls.NOT_AFTER.key: NOW + 10 * DAY}, None),  # the chain's earliest counts
        (Thresholds(crl_remaining=3600 * 6), {http.CRL_NEXT_UPDATE.key: NOW + 3600 * 2.5}, "CRL nextUpdate in 2.5 hours"),
        (Thresholds(), {icmp.RTT_AVG.key: 9.0, icmp.LOSS.key: 1.0}, None),  # no threshold set: never DEGRADED
    ],
)  # fmt: skip
def test_each_value_threshold(limits: Thresholds, values: dict[str, float], expected: str | None) -> None:
    """Each threshold words its reason as operators read it; a value within its limit is not DEGRADED."""
    assert reason(limits, **values) == expected


def test_latency_first_then_values_in_order_and_only_for_ok_results() -> None:
    """A slow probe is "slow" whatever its values; RTT before loss; a failed result is never DEGRADED."""
    limits = Thresholds(latency=0.5, rtt=0.01, loss_ratio=0.1)
    values = {icmp.RTT_AVG.key: 0.02, icmp.LOSS.key: 0.5}
    assert reason(limits, duration=0.75, **values) == "slow: 0.750s (limit 500ms)"
    assert reason(limits, **values) == "high round-trip time: 20.0ms (limit 10ms)"
    assert reason(limits, ok=False, duration=0.75, **values) is None


def test_every_declared_threshold_is_a_config_key() -> None:
    """A kind's Limit names a key of `degraded:` (a typo would be a threshold that never applies), and
    every key but latency (the runner's own) belongs to some kind."""
    settings = {rule.setting for _, rule in registry.limits()}
    assert settings == set(Thresholds.model_fields) - {"latency"}
