"""Notifiers: one per channel kind behind one small interface (base.Notifier)."""
