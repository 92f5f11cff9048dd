"""The monitoring daemon: config -> scheduler -> probes -> state -> incidents/metrics/store -> reports."""

__version__ = "0.1.0"
