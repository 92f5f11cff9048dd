"""Durable state: what must survive a restart. SQLite by default (see sqlite.py)."""
