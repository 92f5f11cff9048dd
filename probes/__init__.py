"""Probe kinds: one module per kind behind one signature (see base.py) and one registry."""
