"""Config of on-call schedules (当番表): rotations of shifts (日勤/夜勤) that a playbook level can page
instead of, or besides, fixed contacts. The rules of slots, rotation and layers are in monitor/oncall/rotation.py.

    schedules:
      noc:
        name: NOC 当番
        layers:
          - name: base
            rotation_start: 2026-12-01     # members[0] takes the first shift of this day
            rotate: shift                  # each shift goes to the next member (or: day, week)
            shifts:
              - {name: 日勤, start: "08:30", end: "20:30"}
              - {name: 夜勤, start: "20:30", end: "08:30"}   # an end not after the start is the next day
            members: [yamada, suzuki, tanaka]
        managers: [noc-lead]              # users/tokens who may swap and override for anyone
        handover: {via: [mail]}           # the incoming shift's summary, at each shift change
"""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from monitor.config.model import StrictModel
from monitor.config.types import Duration, Name


def _shift_name(value: str) -> str:
    # a shift's name is part of its slots' identity (see rotation.py): no "/", which separates the parts
    if "/" in value or value != value.strip():
        raise ValueError('a shift or layer name may not contain "/" or surrounding spaces')
    return value


ShiftName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_shift_name)]


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone "{value}" (e.g. Asia/Tokyo)') from None
    return value


class Shift(StrictModel):
    name: ShiftName  # e.g. 日勤, 夜勤: with the day it starts on, the identity of its slots
    start: time  # hand-off times, in the schedule's time zone (JST by default)
    end: time  # an end at or before the start is on the next day (a night shift)

    @property
    def minutes(self) -> int:
        start, end = self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute
        return (end - start) % 1440 or 1440


class Layer(StrictModel):
    name: ShiftName
    shifts: list[Shift] = Field(min_length=1)
    members: list[Name] = Field(min_length=1)  # contact names, in rotation order
    rotation_start: date  # the rotation's first day: members[0] takes its first shift
    rotate: Literal["shift", "day", "week"] = "shift"  # how long one member keeps the duty
    days: Literal["all", "workdays", "offdays"] = "all"  # offdays: weekends and holidays of the calendar

    @model_validator(mode="after")
    def _shape(self) -> Layer:
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError("shift names must be unique within a layer (they identify its slots)")
        if sum(s.minutes for s in self.shifts) > 1440:
            raise ValueError("the shifts of a layer add up to more than 24 hours a day: they overlap")
        return self


class Handover(StrictModel):
    via: list[Name] = Field(min_length=1)  # email notifiers: the summary goes to the incoming shift's people
    upcoming: Duration = 86400.0  # maintenance starting within this long counts as upcoming


class Schedule(StrictModel):
    name: str | None = None  # display name, e.g. NOC 当番 (the key otherwise)
    timezone: Annotated[str, AfterValidator(_zone)] = "Asia/Tokyo"
    layers: list[Layer] = Field(min_length=1)  # a later layer takes precedence where it has someone on duty
    workdays: list[int] = [1, 2, 3, 4, 5]  # ISO weekdays, Monday = 1
    holidays: list[date] = []  # in addition to Japan's national holidays (built in)
    national_holidays: bool = True
    managers: list[Name] = []  # users/tokens (besides admins) who may swap and override for anyone
    handover: Handover | None = None

    @model_validator(mode="after")
    def _layers(self) -> Schedule:
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError("layer names must be unique within a schedule (they identify its slots)")
        return self
