"""Business hours and the other chat settings a tenant keeps in `tenants.settings`.

`business_hours` looks like this (days without an entry are closed; no setting: always open)::

    {"timezone": "Europe/Oslo",
     "days": {"mon": ["09:00-17:00"], "tue": ["09:00-12:00", "13:00-17:00"], ...}}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from portal.core.contract import Tenant

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_ANSWER_TIMEOUT_S = 120
PRECHAT_MODES = ("off", "optional", "required")


class HoursError(ValueError):
    """The business hours setting cannot be read; the message says where."""


def _clock(text: str) -> time:
    hours, _, minutes = text.strip().partition(":")
    if hours == "24" and minutes in ("00", ""):
        return time.max
    return time(int(hours), int(minutes or 0))


def parse_hours(value: dict[str, Any]) -> tuple[ZoneInfo, dict[int, list[tuple[time, time]]]]:
    """(timezone, weekday -> [(start, end)]) from the setting; HoursError when malformed."""
    try:
        zone = ZoneInfo(str(value.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise HoursError(f"unknown timezone {value.get('timezone')!r}") from exc
    days = value.get("days") or {}
    if not isinstance(days, dict):
        raise HoursError('"days" must map mon..sun to lists of "HH:MM-HH:MM"')
    spans: dict[int, list[tuple[time, time]]] = {}
    for day, ranges in days.items():
        if day not in DAYS or not isinstance(ranges, list):
            raise HoursError(f'"{day}": days are mon..sun, each a list of "HH:MM-HH:MM"')
        for span in ranges:
            try:
                start, end = (_clock(part) for part in str(span).split("-"))
            except ValueError as exc:
                raise HoursError(f'"{day}": {span!r} is not "HH:MM-HH:MM"') from exc
            if end <= start:
                raise HoursError(f'"{day}": {span!r} ends before it starts')
            spans.setdefault(DAYS.index(day), []).append((start, end))
    return zone, spans


def is_open(hours: dict[str, Any] | None, now: datetime | None = None) -> bool:
    """Whether `now` falls in the business hours; no (or broken) setting means always open."""
    if not hours:
        return True
    try:
        zone, spans = parse_hours(hours)
    except HoursError:
        return True  # a broken setting must not hide the chat; the admin form validates it
    local = (now or datetime.now(UTC)).astimezone(zone)
    moment = local.time()
    return any(start <= moment < end for start, end in spans.get(local.weekday(), ()))


@dataclass(frozen=True)
class ChatSettings:
    """The chat settings of one tenant, with their defaults."""

    enabled: bool = True
    business_hours: dict[str, Any] | None = None
    answer_timeout_s: int = DEFAULT_ANSWER_TIMEOUT_S
    prechat: str = "optional"

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> ChatSettings:
        return cls.from_settings(tenant.settings)

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> ChatSettings:
        prechat = s.get("chat_prechat", "optional")
        return cls(
            enabled=bool(s.get("chat_enabled", True)),
            business_hours=s.get("business_hours") or None,
            answer_timeout_s=max(10, int(s.get("chat_answer_timeout_s", DEFAULT_ANSWER_TIMEOUT_S))),
            prechat=prechat if prechat in PRECHAT_MODES else "optional",
        )
