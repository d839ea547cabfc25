"""The agent console's live chat inbox; the conversation itself runs over `/agent/ws`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.messenger.strings import agent_strings
from portal.templating import gettext, page_language, use_language


def _strings(language: str) -> dict[str, str]:
    """The chat texts of static/agent/chats.js, with the console's own: the unverified mark."""
    with use_language(language):
        return agent_strings(language) | {
            "unverified": gettext("Unverified"),
            "unverified_title": gettext("Unverified: anyone can type any address"),
            "on_page": gettext("On the page:"),
        }


@require_agent("agent")
async def chats(request: Request) -> Response:
    tenant = request.state.tenant
    core = request.state.core
    canned = await core.list_canned_responses(tenant.id)
    agents = await core.list_agents(tenant.id)
    config = {
        "ws_url": "/agent/ws",
        "upload_url": "/messenger/uploads",
        "strings": _strings(page_language(request)),
        "canned": [{"shortcut": c.shortcut, "body": c.body} for c in canned],
        "agents": [{"id": a.id, "name": a.name} for a in agents],
    }
    return admin_page(request, "agent/chats.html", {"config": config, "nav": "chats"})
