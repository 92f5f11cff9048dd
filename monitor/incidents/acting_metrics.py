"""Counters of acting from the page: uses and refusals of the signed links, and the replies to mail pages.

A NOC alerts on these: a burst of forged links or of replies from addresses nobody paged is someone trying,
and replies refused for a missing action word mean the page's instructions are not understood."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ActingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.links = Counter(
            "monitor_action_links_total",
            "Action link requests by action (ack, escalate, approve; unknown for links we never signed), method and "
            "outcome (shown, ok, rejected, state, replayed, forged, expired, malformed, not_found, not_allowed, off, "
            "standby).",
            ["action", "method", "outcome"],
            registry=registry,
        )
        self.replies = Counter(
            "monitor_mail_replies_total",
            "Replies to mail pages by outcome (ok, rejected, replayed, refused_sender, unmatched, no_action, "
            "unreadable, ignored_automatic, standby, failed).",
            ["outcome"],
            registry=registry,
        )
