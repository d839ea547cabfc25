"""The widget's settings, kept in `tenants.settings` under `widget_*` keys, with their defaults.

The admin edits them (`/admin/widget`); `portal.widget.config` turns them, the tenant's branding
and its chat settings into the run-time config the loader reads. Reading never fails: a value
out of range or of the wrong kind falls back to its default, so a broken row cannot break the
launcher on a customer's site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal.core.contract import Tenant
from portal.request_helpers import MAX_DB_ID

APPS = ("kb", "chat", "form", "tickets")  # in the order the panel's home lists them
POSITIONS = ("right", "left")  # "right" is the end side: mirrored in right-to-left pages
AWAY_MODES = ("no_chat", "hide", "form")  # outside business hours: drop chat, hide all, or form
MAX_OFFSET = 200
MAX_Z_INDEX = 2_147_483_647
MAX_LABEL = 40
MAX_GREETING = 200


@dataclass(frozen=True)
class WidgetSettings:
    """One tenant's widget settings, each valid (defaults where the stored value is not)."""

    apps: tuple[str, ...] = APPS
    position: str = "right"
    offset_x: int = 20  # px from the side
    offset_y: int = 20  # px from the bottom
    # Above ordinary page content, yet below what sites reserve for their own dialogs: a forced
    # 2147483000 (chatwoot#8957) covers a site's cookie banner and modals.
    z_index: int = 10_000
    label: str = ""  # the launcher's text; empty: "Help" in the visitor's language
    greeting: str = ""  # the panel's heading; empty: "How can we help?" in that language
    form_id: int | None = None  # the "contact us" form; None: the tenant's first form
    away: str = "no_chat"
    require_identity: bool = False  # chat only for visitors the company's site identified

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> WidgetSettings:
        return cls.from_settings(tenant.settings)

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> WidgetSettings:
        d = cls()
        apps = s.get("widget_apps")
        return cls(
            apps=tuple(a for a in APPS if a in apps) if isinstance(apps, list) else d.apps,
            position=_choice(s.get("widget_position"), POSITIONS, d.position),
            offset_x=_int(s.get("widget_offset_x"), 0, MAX_OFFSET, d.offset_x),
            offset_y=_int(s.get("widget_offset_y"), 0, MAX_OFFSET, d.offset_y),
            z_index=_int(s.get("widget_z_index"), 0, MAX_Z_INDEX, d.z_index),
            label=_text(s.get("widget_label"), MAX_LABEL),
            greeting=_text(s.get("widget_greeting"), MAX_GREETING),
            form_id=_int(s.get("widget_form_id"), 1, MAX_DB_ID, None),
            away=_choice(s.get("widget_away"), AWAY_MODES, d.away),
            require_identity=s.get("widget_require_identity") is True,
        )

    def as_settings(self) -> dict[str, Any]:
        """The `tenants.settings` changes that store these values."""
        return {
            "widget_apps": list(self.apps),
            "widget_position": self.position,
            "widget_offset_x": self.offset_x,
            "widget_offset_y": self.offset_y,
            "widget_z_index": self.z_index,
            "widget_label": self.label,
            "widget_greeting": self.greeting,
            "widget_form_id": self.form_id,
            "widget_away": self.away,
            "widget_require_identity": self.require_identity,
        }


def _choice(value: Any, choices: tuple[str, ...], default: str) -> str:
    return value if value in choices else default


def _int(value: Any, low: int, high: int, default: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return default
    return value


def _text(value: Any, limit: int) -> str:
    return " ".join(value.split())[:limit] if isinstance(value, str) else ""
