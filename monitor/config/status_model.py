"""Telling the governments what is happening: the public status page (`status_page:`), notices and
their subscribers (`notices:`), and recovery-time objectives (`recovery:`).

Only what is listed under status_page.services is ever public, under the names given there: internal
target names, addresses and failure reasons never reach the page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from monitor.config.model import StrictModel
from monitor.config.response_model import Match, Severity
from monitor.config.types import Duration, Listen, Name, PrefectureCode


class PublicService(StrictModel):
    id: Name  # in URLs, JSON and subscriptions
    name: str = Field(min_length=1, max_length=200)  # plain Japanese, as residents and governments say it
    name_en: str | None = None
    group: str | None = None  # heading on the page, e.g. 全国サービス
    services: list[Name] = []  # the internal services whose states it shows
    select: Match = {}  # or every internal service whose labels match
    prefectures: bool = False  # also show it per prefecture (LGWAN)

    @model_validator(mode="after")
    def _members(self) -> PublicService:
        if not self.services and not self.select:
            raise ValueError("give services or select: a public service must say what it shows")
        return self


class StatusPage(StrictModel):
    title: str = "地方公共団体向け共通基盤 稼働状況"
    title_en: str = "Status of the shared platform for local governments"
    listen: Listen | None = None  # own HOST:PORT (e.g. on LGWAN); always also at /status on the daemon's listener
    history_days: int = Field(default=90, ge=7, le=400)
    planned_days: int = Field(default=30, ge=1, le=366)  # planned maintenance shown this far ahead
    services: list[PublicService] = []

    @model_validator(mode="after")
    def _unique(self) -> StatusPage:
        ids = [s.id for s in self.services]
        for i in ids:
            if ids.count(i) > 1:
                raise ValueError(f'two public services with id "{i}"')
        return self


class Subscriber(StrictModel):
    contact: Name  # under contacts:
    via: list[Name] = Field(min_length=1)  # notifiers (mail, webhook)
    services: list[Name] = []  # public service ids; empty: all
    prefectures: list[PrefectureCode] = []  # empty: all


class NoticePolicy(StrictModel):
    auto_draft: list[Severity] = ["critical"]  # incidents of these severities draft a notice (published by hand)
    subscribers: list[Subscriber] = []


class Objective(StrictModel):
    match: Match = {}  # incident labels, plus "severity"
    objective: Duration


class Recovery(StrictModel):
    objectives: list[Objective] = []  # first match wins
    default: Duration | None = None  # for incidents no rule matches; none: no objective
    warn_at: float = Field(default=0.8, gt=0, le=1)  # escalate at this share of the objective
    escalate: Literal["next_level", "none"] = "next_level"


class StatusSection(StrictModel):
    status_page: StatusPage | None = None
    notices: NoticePolicy = NoticePolicy()
    recovery: Recovery = Recovery()
