"""The response part of the generated configs: incident severity rules, escalation playbooks, routing,
maintenance and API tokens. The demo pages a real Alertmanager when given one; the example shows a
realistic three-level escalation by Alertmanager and mail, routed by severity and time of day."""

from __future__ import annotations

from typing import Any

SEVERITY_RULES = [
    {"match": {"tier": "national"}, "severity": "critical"},
    {"match": {"system": ["backbone", "lgwan"], "role": ["core-router", "access-point"]}, "severity": "critical"},
    {"match": {"system": "lgwan"}, "severity": "major"},
    {"match": {"tier": "prefecture"}, "severity": "major"},
    {"match": {"tier": "municipality"}, "severity": "minor"},
]
DEMO_TOKEN_ENV = {"operator": "MONITOR_DEMO_OPERATOR_TOKEN", "admin": "MONITOR_DEMO_ADMIN_TOKEN",
                  "alertmanager": "MONITOR_DEMO_ALERTMANAGER_TOKEN"}  # fmt: skip


def demo_response(listen: str, alertmanager_url: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {
        "incidents": {"group_wait": "10s", "console_url": f"http://{listen}", "severity": SEVERITY_RULES},
        "auth": {
            "anonymous": "viewer",
            "tokens": [
                {"name": f"demo-{role}", "role": role, "token": f"${{{env}}}"} for role, env in DEMO_TOKEN_ENV.items()
            ],
        },
    }
    if alertmanager_url:
        section["notifiers"] = {
            "alertmanager": {"kind": "alertmanager", "urls": [alertmanager_url], "resend_interval": "1m"}
        }
        section["playbooks"] = {
            "default": {
                "ack_expiry": "1h",
                "levels": [
                    {"notify": [{"via": ["alertmanager"]}], "ack_timeout": "5m"},
                    {"notify": [{"via": ["alertmanager"]}], "ack_timeout": "10m"},
                    {"notify": [{"via": ["alertmanager"]}]},
                ],
            }
        }
    return section


def example_response() -> dict[str, Any]:
    mail_and_am = {"via": ["alertmanager", "mail"]}
    return {
        "incidents": {
            "open_on": ["down"],
            "group_wait": "15s",
            "console_url": "https://noc-monitor.example.lg.jp",
            "runbook_url": "https://wiki.example.lg.jp/runbooks/{system}",
            "severity": SEVERITY_RULES,
        },
        "notifiers": {
            "alertmanager": {
                "kind": "alertmanager",
                "urls": ["http://alertmanager-1:9093", "http://alertmanager-2:9093"],
            },
            "mail": {
                "kind": "email",
                "host": "smtp-relay.example.lg.jp",
                "port": 25,
                "sender": "noc-monitor@example.lg.jp",
            },
        },
        "contacts": {
            "noc-shift": {"name": "監視オペレータ当番", "email": "noc-shift@example.lg.jp"},
            "system-owner": {"name": "システム担当者", "email": "system-owner@example.lg.jp"},
            "supervisor": {"name": "運用統括責任者", "email": "supervisor@example.lg.jp"},
            "management": {"name": "管理職・関係自治体連絡窓口", "email": "management@example.lg.jp"},
        },
        "playbooks": {
            "default": {
                "ack_expiry": "4h",
                "levels": [
                    {"notify": [{**mail_and_am, "contacts": ["noc-shift"]}], "ack_timeout": "15m", "repeat": "30m"},
                    {"notify": [{**mail_and_am, "contacts": ["system-owner"]}], "ack_timeout": "30m"},
                    {"notify": [{**mail_and_am, "contacts": ["supervisor"]}]},
                ],
            },
            "critical": {
                "ack_expiry": "2h",
                "levels": [
                    {
                        "notify": [{**mail_and_am, "contacts": ["noc-shift", "system-owner"]}],
                        "ack_timeout": "5m",
                        "repeat": "10m",
                    },
                    {"notify": [{**mail_and_am, "contacts": ["supervisor"]}], "ack_timeout": "15m"},
                    {"notify": [{**mail_and_am, "contacts": ["management"]}]},
                ],
            },
            "critical-night": {
                "ack_expiry": "2h",
                "levels": [
                    {"notify": [{**mail_and_am, "contacts": ["noc-shift"]}], "ack_timeout": "5m", "repeat": "10m"},
                    {"notify": [{**mail_and_am, "contacts": ["system-owner", "supervisor"]}], "ack_timeout": "10m"},
                    {"notify": [{**mail_and_am, "contacts": ["management"]}]},
                ],
            },
        },
        "routing": {
            "office_hours": {"weekdays": [1, 2, 3, 4, 5], "start": "08:30", "end": "17:45", "timezone": "Asia/Tokyo"},
            "routes": [
                {"match": {"severity": "critical"}, "playbook": "critical", "off_hours_playbook": "critical-night"},
                {"match": {}, "playbook": "default"},
            ],
        },
        "maintenance": [
            {
                "name": "weekly-backup-center-work",
                "reason": "バックアップセンター定期保守（毎週日曜 02:00-04:00）",
                "select": {"system": "chukan"},
                "cron": "0 2 * * 0",
                "duration": "2h",
                "timezone": "Asia/Tokyo",
            },
        ],
        "slo": {
            "objective": 0.999,
            "window": "month",
            "hours": {
                "office": {"weekdays": [1, 2, 3, 4, 5], "start": "08:30", "end": "17:45", "timezone": "Asia/Tokyo"}
            },
            "rules": [
                {"services": ["card-mgmt"], "objective": 0.9995, "degraded": "down"},
                {"match": {"system": "chukan"}, "service_hours": "office"},
                {"match": {"tier": "municipality"}, "objective": 0.995},
            ],
        },
        "auth": {
            "anonymous": "viewer",
            "tokens": [  # replace these hashes: `printf %s "$TOKEN" | sha256sum`
                {"name": "noc-console", "role": "operator", "token_sha256": "0" * 64},
                {"name": "alertmanager", "role": "alertmanager", "token_sha256": "1" * 64},
            ],
        },
    }
