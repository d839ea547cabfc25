"""The visitor's chat page, `/messenger` (`?embed=1` inside the widget's iframe)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.customer.pages import page
from portal.i18n import current_language
from portal.messenger.hours import ChatSettings
from portal.messenger.strings import visitor_strings
from portal.request_helpers import tenant_of
from portal.services import services
from portal.urls import path_for


async def messenger_page(request: Request) -> Response:
    tenant = tenant_of(request)
    chat = ChatSettings.for_tenant(tenant)
    has_files = services(request).core.capabilities.attachments
    config = {
        "ws_url": path_for(request, "messenger_ws"),
        "token_url": path_for(request, "messenger_token"),
        # Empty when the core keeps no files: the page then offers no attach button.
        "upload_url": path_for(request, "messenger_upload") if has_files else "",
        "lang": current_language(),
        "prechat": chat.prechat,
        "strings": visitor_strings(),
    }
    return page(
        request,
        "messenger/messenger.html",
        {"config": config, "prechat": chat.prechat, "enabled": chat.enabled},
    )
