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
DEMO_TOKEN_ENV = {
    "operator": "MONITOR_DEMO_OPERATOR_TOKEN",
    "admin": "MONITOR_DEMO_ADMIN_TOKEN",
    "alertmanager": "MONITOR_DEMO_ALERTMANAGER_TOKEN",
}


def demo_response(listen: str, alertmanager_url: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {
        "incidents": {"group_wait": "auto", "console_url": f"http://{listen}", "severity": SEVERITY_RULES},
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
            "group_wait": "auto",  # a confirmed blip that recovers at once never pages
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


PUBLIC_NAMES = {  # internal national system -> how residents and governments name it
    "juki-net": ("住民基本台帳ネットワークシステム", "Resident Registry Network"),
    "card-mgmt": ("マイナンバーカード関連サービス", "My Number Card services"),
    "jpki-ocsp": ("公的個人認証サービス（失効確認）", "JPKI revocation checking (OCSP)"),
    "jpki-crl": ("公的個人認証サービス（失効リスト配布）", "JPKI revocation lists (CRL)"),
    "chukan": ("自治体中間サーバー・プラットフォーム", "Intermediate server platform"),
}


def status_sections() -> dict[str, Any]:
    """The public status page (national services, LGWAN per prefecture) and recovery-time objectives."""
    national = [
        {"id": system, "name": ja, "name_en": en, "group": "全国サービス", "services": [system]}
        for system, (ja, en) in PUBLIC_NAMES.items()
    ]
    regional = [
        {
            "id": "lgwan",
            "name": "総合行政ネットワーク（LGWAN）",
            "name_en": "LGWAN",
            "group": "LGWAN",
            "select": {"system": "lgwan"},
            "prefectures": True,
        },
        {
            "id": "pref-net",
            "name": "都道府県ネットワーク",
            "name_en": "Prefecture networks",
            "group": "LGWAN",
            "select": {"system": "pref-net"},
            "prefectures": True,
        },
    ]
    return {
        "status_page": {"services": national + regional},
        "notices": {"auto_draft": ["critical"]},
        "recovery": {
            "objectives": [
                {"match": {"severity": "critical"}, "objective": "1h"},
                {"match": {"severity": "major"}, "objective": "4h"},
            ],
            "default": "8h",
            "warn_at": 0.8,
        },
    }
