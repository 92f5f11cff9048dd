"""Benchmarks (results and how to run them: BENCHMARKS.md). Not part of the test suite.

`python -m bench.run` compares the daemon's probes with blackbox_exporter + Prometheus and measures
one daemon at 10,000 checks.
"""
