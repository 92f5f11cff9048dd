"""Config of the monthly report as a record (`reports:`): who receives each prefecture's own variant of an
approved report (its liaison contact, 連絡窓口), by which mail notifiers, in which language.

    reports:
      distribution:
        via: [mail]                   # email notifiers
        liaisons: {"13": tokyo-liaison, 大阪府: osaka-liaison}   # prefecture (JIS code or name) -> contact
        language: ja

Strict: a liaison is a contact with an e-mail address, `via` names email notifiers, and a prefecture with
a liaison has services in the inventory (else its variant would be an empty report: a typo, surely)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from monitor.config.errors import Issue
from monitor.config.model import StrictModel
from monitor.config.types import Name, PrefectureCode


class Distribution(StrictModel):
    via: list[Name] = []  # email notifiers the variants go out by
    liaisons: dict[PrefectureCode, Name] = {}  # prefecture -> its liaison contact (under contacts:)
    language: Literal["ja", "en"] = "ja"

    @model_validator(mode="after")
    def _via(self) -> Distribution:
        if self.liaisons and not self.via:
            raise ValueError("liaisons need via: the email notifiers their report variants go out by")
        return self


class ReportsConfig(StrictModel):
    distribution: Distribution = Distribution()


class ReportsSection(StrictModel):
    """The top-level key this module adds to the config."""

    reports: ReportsConfig = ReportsConfig()


def check_reports(config: Any, inventory: Any) -> list[Issue]:
    """Liaisons are real contacts with an e-mail address, reached by real email notifiers, for prefectures
    that have services."""
    issues: list[Issue] = []
    distribution: Distribution = config.reports.distribution
    loc: tuple[str | int, ...] = ("reports", "distribution")
    for k, via in enumerate(distribution.via):
        notifier = config.notifiers.get(via)
        if notifier is None:
            issues.append(Issue((*loc, "via", k), f'unknown notifier "{via}"'))
        elif notifier.kind != "email":
            issues.append(Issue((*loc, "via", k), f'"{via}" is {notifier.kind}: a report is sent by email'))
    prefectures = {s.labels.get("prefecture") for s in inventory.services.values()}
    for code, name in distribution.liaisons.items():
        contact = config.contacts.get(name)
        if contact is None:
            issues.append(Issue((*loc, "liaisons", code), f'unknown contact "{name}"'))
        elif not contact.email:
            issues.append(Issue((*loc, "liaisons", code), f'contact "{name}" has no email'))
        if code not in prefectures:
            issues.append(Issue((*loc, "liaisons", code), f"no service has prefecture {code}: its report is empty"))
    return issues
