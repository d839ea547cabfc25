"""Business hours and the other chat settings a tenant keeps in `tenants.settings`.

`business_hours` looks like this (days without an entry are closed; no setting: always open)::

    {"timezone": "Europe/Oslo",
     "days": {"mon": ["09:00-17:00"], "tue": ["09:00-12:00", "13:00-17:00"], ...}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
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


Hours = tuple[ZoneInfo, dict[int, list[tuple[time, time]]]]


def _readable(hours: dict[str, Any] | None) -> Hours | None:
    """The parsed hours, or None for always open: no setting, or a broken one (a broken
    setting must not hide the chat; the admin form validates it)."""
    if not hours:
        return None
    try:
        return parse_hours(hours)
    except HoursError:
        return None


def _open_at(hours: Hours | None, now: datetime | None) -> bool:
    if hours is None:
        return True
    zone, spans = hours
    local = (now or datetime.now(UTC)).astimezone(zone)
    moment = local.time()
    return any(start <= moment < end for start, end in spans.get(local.weekday(), ()))


def is_open(hours: dict[str, Any] | None, now: datetime | None = None) -> bool:
    """Whether `now` falls in the business hours; no (or broken) setting means always open."""
    return _open_at(_readable(hours), now)


@dataclass(frozen=True)
class ChatSettings:
    """The chat settings of one tenant, with their defaults."""

    enabled: bool = True
    business_hours: dict[str, Any] | None = None
    answer_timeout_s: int = DEFAULT_ANSWER_TIMEOUT_S
    prechat: str = "optional"
    # The business hours parsed once, for `is_open`, which chat messages ask.
    _hours: Hours | None = field(init=False, repr=False, compare=False)
    # How long a chat may wait for an agent, as waiting chats' messages compare it.
    answer_timeout: timedelta = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hours", _readable(self.business_hours))
        object.__setattr__(self, "answer_timeout", timedelta(seconds=self.answer_timeout_s))

    def is_open(self, now: datetime | None = None) -> bool:
        """Whether `now` falls in the business hours (no or a broken setting: always)."""
        return _open_at(self._hours, now)

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


class ChatSettingsCache:
    """Each tenant's `ChatSettings`, parsed once per version of its settings.

    Kept by the tenant's `settings` mapping itself: every reload of a tenant (after a
    `tenant.changed` event, or the resolver's expiry) is a new mapping, so a changed tenant is
    parsed again on first use without listening for events, and a socket that still holds the
    tenant of its handshake keeps the settings it had, as it always did.
    """

    def __init__(self) -> None:
        self._by_tenant: dict[int, tuple[dict[str, Any], ChatSettings]] = {}

    def get(self, tenant: Tenant) -> ChatSettings:
        cached = self._by_tenant.get(tenant.id)
        if cached is not None and cached[0] is tenant.settings:
            return cached[1]
        settings = ChatSettings.for_tenant(tenant)
        self._by_tenant[tenant.id] = (tenant.settings, settings)
        return settings
