"""Incidents: root-cause grouping, escalation playbooks, the durable notification outbox."""
