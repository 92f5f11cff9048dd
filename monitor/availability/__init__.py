"""Availability, SLOs, burn-rate rules and the monthly availability report (月次稼働報告)."""
