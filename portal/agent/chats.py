"""The agent console's live chat inbox; the conversation itself runs over `/agent/ws`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.i18n import gettext
from portal.messenger.strings import agent_strings
from portal.request_helpers import tenant_of
from portal.services import services
from portal.urls import path_for


def _strings() -> dict[str, str]:
    """The chat texts of static/agent/chats.js, with the console's own: the unverified mark."""
    return agent_strings() | {
        "unverified": gettext("Unverified"),
        "unverified_title": gettext("Unverified: anyone can type any address"),
        "on_page": gettext("On the page:"),
    }


@require_agent("agent")
async def chats(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    canned = await core.chat.list_canned_responses(tenant.id)
    agents = await core.tenants.list_agents(tenant.id)
    has_files = core.capabilities.attachments
    config = {
        "ws_url": path_for(request, "agent_ws"),
        "upload_url": path_for(request, "messenger_upload") if has_files else "",
        "strings": _strings(),
        "canned": [{"shortcut": c.shortcut, "body": c.body} for c in canned],
        "agents": [{"id": a.id, "name": a.name} for a in agents],
    }
    return admin_page(request, "agent/chats.html", {"config": config, "nav": "chats"})
