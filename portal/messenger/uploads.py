"""Chat files: `POST /messenger/uploads` and `GET /messenger/attachments/{id}?sig=`.

An upload is checked like form attachments (`portal.attachments.check`, its message in the
request's language) and answered with an upload id that only its uploader can attach, for a day;
visitors' uploads are rate limited. A chat file is served by the signed link the messages carry,
with the same headers as every other download (`portal.attachments.download_response`).
"""

from __future__ import annotations

import asyncio
import dataclasses

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.attachments import (
    AttachmentRejected,
    Limits,
    Upload,
    check,
    download_response,
)
from portal.core.contract import NotFound
from portal.messenger.service import (
    agent_owner,
    read_file_link,
    read_visitor_token,
    upload_token,
    visitor_owner,
)
from portal.ratelimit import (
    UPLOADS_PER_ADDRESS,
    UPLOADS_PER_TENANT,
    UPLOADS_PER_VISITOR,
    client_ip,
    too_many,
)
from portal.request_helpers import MAX_DB_ID, same_origin, tenant_of
from portal.services import services
from portal.sessions.staff import current_agent

MAX_UPLOAD_REQUEST = 30 * 1024 * 1024


def _json_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


async def upload(request: Request) -> Response:
    tenant = tenant_of(request)
    signer = services(request).signer
    visitor_id = read_visitor_token(signer, tenant.id, _bearer(request))
    if visitor_id is not None:
        owner = visitor_owner(visitor_id)
        refused = services(request).rate_limits.check(
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
        if not same_origin(request):  # the agent comes by cookie: only our own pages may post
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
    upload = Upload("file", file.filename or "file", await file.read(limits.max_bytes + 1))
    store = services(request).attachments
    try:
        check([upload], dataclasses.replace(limits, max_count=1))
    except AttachmentRejected as exc:
        data = upload.data
        status = 413 if len(data) > limits.max_bytes else 415 if data else 400
        return _json_error(str(exc), status)
    draft = await asyncio.to_thread(
        store.save, tenant.id, upload.filename, upload.data, upload.content_type
    )
    return JSONResponse(
        {
            "upload": upload_token(signer, tenant.id, owner, draft),
            "filename": draft.filename,
            "size": draft.size,
        },
        status_code=201,
    )


async def attachment(request: Request) -> Response:
    tenant = tenant_of(request)
    attachment_id = request.path_params["attachment_id"]
    sig = request.query_params.get("sig", "")
    not_found = _json_error("No such file.", 404)
    if attachment_id > MAX_DB_ID or not read_file_link(
        services(request).signer, attachment_id, sig
    ):
        return not_found
    try:
        found = await services(request).core.tickets.get_attachment(tenant.id, attachment_id)
    except NotFound:
        return not_found
    if found.message_id is None:
        return not_found  # ticket files are served by the portal and the console, not here
    path = services(request).attachments.stored(tenant.id, found.storage_key)
    if path is None:
        return not_found
    return download_response(path, found)
