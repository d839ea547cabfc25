"""The messenger's HTTP and websocket routes: the visitor page, tokens, uploads, the sockets.

- `GET /messenger` the visitor's chat page (`?embed=1` inside the widget's iframe).
- `POST /messenger/token` a signed visitor token: the same one back if the body carries a
  valid one, else a new visitor (new visitors are rate limited per address and tenant).
- `POST /messenger/uploads` a file for a message, checked like form attachments; answers an
  upload id that only its uploader can attach, for a day. Visitors' uploads are rate limited.
- `GET /messenger/attachments/{id}?sig=` a chat file, by the signed link the messages carry.
- `WS /messenger/ws` visitors, `WS /agent/ws` agents (see `protocol.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from portal.admin.auth import current_agent, origin_ok
from portal.attachments import AttachmentRejected, AttachmentStore, Limits
from portal.core.contract import NotFound, Tenant
from portal.customer.session import current_session, page
from portal.jsonsafe import JSONError
from portal.jsonsafe import loads as json_loads
from portal.messenger import protocol as p
from portal.messenger.hours import ChatSettings
from portal.messenger.service import (
    Messenger,
    agent_owner,
    read_file_link,
    read_visitor_token,
    upload_token,
    visitor_owner,
    visitor_token,
)
from portal.messenger.sockets import AgentSocket, ChatSocket, VisitorSocket, origin_allowed
from portal.messenger.strings import visitor_strings
from portal.ratelimit import (
    TOKENS_PER_ADDRESS,
    TOKENS_PER_TENANT,
    UPLOADS_PER_ADDRESS,
    UPLOADS_PER_TENANT,
    UPLOADS_PER_VISITOR,
    client_ip,
    limits_of,
    too_many,
)
from portal.templating import page_language

log = logging.getLogger(__name__)

MAX_UPLOAD_REQUEST = 30 * 1024 * 1024


def _tenant(request: Request | WebSocket) -> Tenant:
    return request.state.tenant


def _json_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# ------------------------------------------------------------------ pages and tokens
async def messenger_page(request: Request) -> Response:
    tenant = _tenant(request)
    chat = ChatSettings.for_tenant(tenant)
    language = page_language(request)
    config = {
        "ws_url": "/messenger/ws",
        "token_url": "/messenger/token",
        "upload_url": "/messenger/uploads",
        "lang": language,
        "prechat": chat.prechat,
        "strings": visitor_strings(language),
    }
    return page(
        request,
        "messenger/messenger.html",
        {"config": config, "prechat": chat.prechat, "enabled": chat.enabled},
    )


async def issue_token(request: Request) -> Response:
    tenant = _tenant(request)
    signer = request.state.signer
    try:
        body = json_loads(await request.body() or b"{}")
    except JSONError as exc:
        return _json_error(str(exc), 400)
    old = body.get("token") if isinstance(body, dict) else None
    visitor_id = read_visitor_token(signer, tenant.id, old)
    if visitor_id is None:
        # Only new visitors count: a visitor id is what the per-visitor limits key on.
        refused = limits_of(request).check(
            tenant, (TOKENS_PER_ADDRESS, client_ip(request)), (TOKENS_PER_TENANT, "")
        )
        if refused:
            return too_many(request, refused)
        visitor_id = secrets.token_urlsafe(16)
    token = visitor_token(signer, tenant.id, visitor_id)
    return JSONResponse(
        {"token": token, "visitor_id": visitor_id}, headers={"Cache-Control": "no-store"}
    )


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def upload(request: Request) -> Response:
    tenant = _tenant(request)
    signer = request.state.signer
    visitor_id = read_visitor_token(signer, tenant.id, _bearer(request))
    if visitor_id is not None:
        owner = visitor_owner(visitor_id)
        refused = limits_of(request).check(
            tenant,
            (UPLOADS_PER_VISITOR, visitor_id),
            (UPLOADS_PER_ADDRESS, client_ip(request)),
            (UPLOADS_PER_TENANT, ""),
        )
        if refused:
            return too_many(request, refused)
    else:
        agent = await current_agent(request)
        if agent is None:
            return _json_error("Sign in or start a chat first.", 401)
        if not origin_ok(request):  # the agent comes by cookie: only our own pages may post
            return _json_error("Uploads must come from this site's pages.", 403)
        owner = agent_owner(agent.id)
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_REQUEST:
        return _json_error("That file is too large.", 413)
    try:
        form = await request.form(max_files=1, max_fields=5)
    except Exception:  # python-multipart's errors differ by version; all mean a bad body
        return _json_error("Send the file as multipart/form-data in the field 'file'.", 400)
    file = form.get("file")
    if not isinstance(file, UploadFile):
        return _json_error("Send the file as multipart/form-data in the field 'file'.", 400)
    limits = Limits.for_tenant(tenant)
    # One byte past the tenant's maximum is enough to refuse it; never hold more than that.
    data = await file.read(limits.max_bytes + 1)
    name = file.filename or "file"
    store: AttachmentStore = request.state.attachments
    try:
        store.check([(name, data)], dataclasses.replace(limits, max_count=1))
    except AttachmentRejected as exc:
        status = 413 if len(data) > limits.max_bytes else 415 if data else 400
        return _json_error(str(exc), status)
    draft = await asyncio.to_thread(store.save, tenant.id, name, data)
    return JSONResponse(
        {
            "upload": upload_token(signer, tenant.id, owner, draft),
            "filename": draft.filename,
            "size": draft.size,
        },
        status_code=201,
    )


async def attachment(request: Request) -> Response:
    tenant = _tenant(request)
    attachment_id = request.path_params["attachment_id"]
    sig = request.query_params.get("sig", "")
    not_found = _json_error("No such file.", 404)
    if attachment_id > 2**62 or not read_file_link(request.state.signer, attachment_id, sig):
        return not_found
    try:
        found = await request.state.core.get_attachment(tenant.id, attachment_id)
        path = request.state.attachments.path(tenant.id, found.storage_key)
    except (NotFound, FileNotFoundError):
        return not_found
    if found.message_id is None:
        return not_found  # ticket files are served by the portal and the console, not here
    return FileResponse(
        path,
        media_type=found.content_type,
        filename=found.filename,
        content_disposition_type="attachment",
        headers={"Content-Security-Policy": "sandbox", "Cache-Control": "private, max-age=3600"},
    )


# ------------------------------------------------------------------ sockets
async def _hello(websocket: WebSocket) -> dict[str, Any] | None:
    """The client's first frame, if it is a hello that arrives in time."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), p.HELLO_TIMEOUT_S)
        frame = p.parse(text, frozenset({"hello"}))
    except (TimeoutError, p.FrameError, WebSocketDisconnect, KeyError):
        return None
    return frame


async def _serve(websocket: WebSocket, make: Any, *, staff: bool) -> None:
    """Accept, check Origin, limits and hello, then run the socket `make(hello)` returns."""
    tenant = _tenant(websocket)
    limits = websocket.state.socket_limits
    ip = websocket.client.host if websocket.client else "?"
    await websocket.accept()
    if not origin_allowed(websocket, tenant, staff=staff):
        await websocket.close(p.CLOSE_ORIGIN, "origin not allowed")
        return
    if not limits.acquire(ip):
        await websocket.close(p.CLOSE_TOO_MANY, "too many connections")
        return
    try:
        hello = await _hello(websocket)
        socket: ChatSocket | None = await make(hello) if hello is not None else None
        if socket is None:
            await websocket.close(p.CLOSE_UNAUTHORIZED, "a valid hello is needed")
            return
        await socket.run(hello)
    except WebSocketDisconnect:
        pass
    finally:
        limits.release(ip)


async def visitor_socket(websocket: WebSocket) -> None:
    messenger: Messenger = websocket.state.messenger
    tenant = _tenant(websocket)

    async def make(hello: dict[str, Any]) -> ChatSocket | None:
        visitor_id = read_visitor_token(websocket.state.signer, tenant.id, hello.get("token"))
        if visitor_id is None:
            return None
        # A signed-in customer (a live server-side session, not just a signed cookie) sees
        # their account's conversations too.
        session = await current_session(websocket)  # type: ignore[arg-type]
        customer_id = session[0].id if session else None
        return VisitorSocket(websocket, messenger, tenant, visitor_id, customer_id)

    await _serve(websocket, make, staff=False)


async def agent_socket(websocket: WebSocket) -> None:
    messenger: Messenger = websocket.state.messenger
    tenant = _tenant(websocket)

    async def make(hello: dict[str, Any]) -> ChatSocket | None:
        agent = await current_agent(websocket)  # type: ignore[arg-type]
        if agent is None:
            return None
        return AgentSocket(websocket, messenger, tenant, agent)

    await _serve(websocket, make, staff=True)


routes: list[BaseRoute] = [
    Route("/messenger", messenger_page, name="messenger"),
    Route("/messenger/token", issue_token, methods=["POST"], name="messenger_token"),
    Route("/messenger/uploads", upload, methods=["POST"], name="messenger_upload"),
    Route(
        "/messenger/attachments/{attachment_id:int}",
        attachment,
        name="messenger_attachment",
    ),
    WebSocketRoute("/messenger/ws", visitor_socket, name="messenger_ws"),
    WebSocketRoute("/agent/ws", agent_socket, name="agent_ws"),
]
