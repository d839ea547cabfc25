"""The signed-in customer's tickets: list, detail, replies, attachments and the rating form.

Visibility is the tenant setting `ticket_visibility`: "own" (the default) shows a customer the
tickets they requested; "organization" also shows every ticket of their organization, when they
have one. A ticket (or attachment) the customer may not see answers exactly like one that does not
exist: the same 404 page, never a 403.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Any, NamedTuple
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from portal.attachments import (
    ALLOWED_TYPES,
    AttachmentRejected,
    AttachmentStore,
    Limits,
    safe_filename,
    sniff,
)
from portal.core.contract import (
    CLOSED_STATUSES,
    AttachmentDraft,
    Conflict,
    Customer,
    NotFound,
    Reply,
    Tenant,
    Ticket,
)
from portal.customer.session import not_found, page, require_customer
from portal.labels import priority_label, status_label
from portal.templating import gettext as _
from portal.templating import ngettext

PAGE_SIZE = 25
MAX_BODY = 20_000
MAX_COMMENT = 2_000
KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


# ------------------------------------------------------------------ labels
LABELS = {"status_label": status_label, "priority_label": priority_label}


# ------------------------------------------------------------------ visibility
def sees_organization(tenant: Tenant, customer: Customer) -> bool:
    return (
        tenant.settings.get("ticket_visibility", "own") == "organization"
        and customer.organization_id is not None
    )


def can_see(tenant: Tenant, customer: Customer, ticket: Ticket) -> bool:
    if ticket.tenant_id != tenant.id:
        return False
    if ticket.customer_id == customer.id:
        return True
    return sees_organization(tenant, customer) and ticket.organization_id == (
        customer.organization_id
    )


async def visible_ticket(request: Request, ticket_id: int) -> Ticket | None:
    """The ticket if the signed-in customer may see it; None both for others' and missing ones."""
    tenant: Tenant = request.state.tenant
    try:
        ticket = await request.state.core.get_ticket(tenant.id, ticket_id)
    except NotFound:
        return None
    return ticket if can_see(tenant, request.state.customer, ticket) else None


# ------------------------------------------------------------------ list
class ListedTicket(NamedTuple):
    """A row of the ticket list, its texts made here: a call from a template costs far more."""

    ticket: Ticket
    status_text: str
    updated_iso: str
    updated_day: str


def listed(ticket: Ticket) -> ListedTicket:
    updated = ticket.updated_at
    return ListedTicket(
        ticket, status_label(ticket.status), updated.isoformat(), updated.strftime("%Y-%m-%d")
    )


@require_customer
async def ticket_list(request: Request) -> Response:
    tenant: Tenant = request.state.tenant
    customer: Customer = request.state.customer
    params = request.query_params
    state = params.get("state", "")
    state = state if state in ("open", "closed") else ""
    query = params.get("q", "").strip()[:200]
    try:
        number = max(1, int(params.get("page", "1")))
    except ValueError:
        number = 1
    scope: dict[str, Any] = (
        {"organization_id": customer.organization_id}
        if sees_organization(tenant, customer)
        else {"customer_id": customer.id}
    )
    result = await request.state.core.list_tickets(
        tenant.id,
        **scope,
        state=state or None,
        query=query,
        offset=(number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    pages = max(1, math.ceil(result.total / PAGE_SIZE))

    def page_url(n: int) -> str:
        query_args = {k: v for k, v in (("state", state), ("q", query)) if v}
        if n > 1:
            query_args["page"] = str(n)
        return "/portal/tickets" + (f"?{urlencode(query_args)}" if query_args else "")

    return page(
        request,
        "customer/tickets.html",
        {
            "tickets": [listed(ticket) for ticket in result.tickets],
            "total": result.total,
            "state": state,
            "query": query,
            "page_number": number,
            "pages": pages,
            "page_url": page_url,
            "organization": "organization_id" in scope,
            "nav": "tickets",
            **LABELS,
        },
    )


# ------------------------------------------------------------------ detail
async def _ticket_page(
    request: Request,
    ticket: Ticket,
    *,
    status_code: int = 200,
    reply_error: str = "",
    reply_body: str = "",
    rating_error: str = "",
) -> Response:
    tenant: Tenant = request.state.tenant
    core = request.state.core
    replies: list[Reply] = await core.list_replies(tenant.id, ticket.id)
    rating = await core.get_rating(tenant.id, ticket.id)
    expected = str(tenant.settings.get("expected_response", "") or "").strip()
    return page(
        request,
        "customer/ticket.html",
        {
            "ticket": ticket,
            "replies": replies,
            "rating": rating,
            "closed": ticket.status in CLOSED_STATUSES,
            "expected_response": expected if ticket.is_open else "",
            "idempotency_key": secrets.token_urlsafe(24),
            "reply_error": reply_error,
            "reply_body": reply_body,
            "rating_error": rating_error,
            "rated": request.query_params.get("rated") == "1",
            "last_reply_id": replies[-1].id if replies else 0,
            "limits": Limits.for_tenant(tenant),
            "nav": "tickets",
            **LABELS,
        },
        status_code=status_code,
    )


@require_customer
async def ticket_detail(request: Request) -> Response:
    ticket = await visible_ticket(request, request.path_params["id"])
    if ticket is None:
        return not_found(request)
    return await _ticket_page(request, ticket)


# ------------------------------------------------------------------ replies
def _uploads(form: Any) -> list[UploadFile]:
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    return [f for f in files if f.filename or (f.size or 0) > 0]


async def _check_files(
    store: AttachmentStore, uploads: list[UploadFile], limits: Limits
) -> list[tuple[str, bytes]]:
    """The files' names and bytes; AttachmentRejected with a message in the page's language."""
    if len(uploads) > limits.max_count:
        raise AttachmentRejected(
            ngettext(
                "Attach at most %(num)d file.", "Attach at most %(num)d files.", limits.max_count
            )
            % {"num": limits.max_count}
        )
    files = []
    for upload in uploads:
        name = safe_filename(upload.filename or "")
        size = upload.size if upload.size is not None else 0
        if size > limits.max_bytes:
            raise AttachmentRejected(
                _("%(name)s is larger than %(size)s MB.")
                % {"name": name, "size": f"{limits.max_bytes / (1024 * 1024):g}"}
            )
        data = await upload.read()
        if not data:
            raise AttachmentRejected(_("%(name)s is empty.") % {"name": name})
        try:
            store.check([(name, data)], limits)
        except AttachmentRejected as exc:
            if len(data) > limits.max_bytes or sniff(data) in ALLOWED_TYPES:
                raise  # too big, or a name the tenant refuses: the message says so already
            raise AttachmentRejected(
                _("%(name)s is not a file type we accept (images, PDF, plain text or ZIP).")
                % {"name": name}
            ) from exc
        files.append((upload.filename or name, data))
    return files


@require_customer
async def add_reply(request: Request) -> Response:
    ticket = await visible_ticket(request, request.path_params["id"])
    if ticket is None:
        return not_found(request)
    tenant: Tenant = request.state.tenant
    customer: Customer = request.state.customer
    form = await request.form()
    body = str(form.get("body", "")).replace("\r\n", "\n").strip()
    uploads = _uploads(form)
    if len(body) > MAX_BODY:
        return await _ticket_page(
            request,
            ticket,
            status_code=400,
            reply_body=body,
            reply_error=_("Your message is too long; keep it under %(num)d characters.")
            % {"num": MAX_BODY},
        )
    if not body and not uploads:
        return await _ticket_page(
            request,
            ticket,
            status_code=400,
            reply_error=_("Write a message or attach a file."),
        )
    store: AttachmentStore = request.state.attachments
    try:
        files = await _check_files(store, uploads, Limits.for_tenant(tenant))
    except AttachmentRejected as exc:
        return await _ticket_page(
            request, ticket, status_code=400, reply_body=body, reply_error=str(exc)
        )
    drafts: tuple[AttachmentDraft, ...] = tuple(
        store.save(tenant.id, name, data) for name, data in files
    )
    key = str(form.get("idempotency_key", ""))
    if not KEY_RE.fullmatch(key):
        key = secrets.token_urlsafe(24)
    reply = await request.state.core.add_reply(
        tenant.id,
        ticket.id,
        author_type="customer",
        author_id=customer.id,
        body=body,
        internal=False,
        idempotency_key=f"portal:{customer.id}:{key}",
        attachments=drafts,
    )
    return RedirectResponse(f"/portal/tickets/{ticket.id}#reply-{reply.id}", status_code=303)


# ------------------------------------------------------------------ rating
@require_customer
async def rate_from_portal(request: Request) -> Response:
    ticket = await visible_ticket(request, request.path_params["id"])
    if ticket is None:
        return not_found(request)
    form = await request.form()
    good = form.get("good")
    if good not in ("1", "0"):
        return await _ticket_page(
            request, ticket, status_code=400, rating_error=_("Choose good or bad.")
        )
    comment = str(form.get("comment", "")).strip()[:MAX_COMMENT]
    error = await store_rating(request, ticket, good == "1", comment)
    if error:
        return await _ticket_page(request, ticket, status_code=409, rating_error=error)
    return RedirectResponse(f"/portal/tickets/{ticket.id}?rated=1#rating", status_code=303)


async def store_rating(request: Request, ticket: Ticket, good: bool, comment: str) -> str:
    """Rate through the core; an error message in the page's language when it refuses."""
    core = request.state.core
    try:
        await core.rate_ticket(ticket.tenant_id, ticket.id, good=good, comment=comment)
    except Conflict:
        current = await core.get_ticket(ticket.tenant_id, ticket.id)
        if current.status not in CLOSED_STATUSES:
            return _("You can rate this request once it is resolved.")
        return _("A rating can be changed for 7 days after it was given; this one can no longer.")
    return ""


# ------------------------------------------------------------------ attachments
@require_customer
async def attachment(request: Request) -> Response:
    tenant: Tenant = request.state.tenant
    core = request.state.core
    try:
        found = await core.get_attachment(tenant.id, request.path_params["id"])
    except NotFound:
        return not_found(request)
    if found.ticket_id is None:
        return not_found(request)
    ticket = await visible_ticket(request, found.ticket_id)
    if ticket is None:
        return not_found(request)
    public = {reply.id for reply in await core.list_replies(tenant.id, ticket.id)}
    if found.reply_id not in public:
        return not_found(request)  # a file on an internal note
    store: AttachmentStore = request.state.attachments
    try:
        path = store.path(tenant.id, found.storage_key)
    except FileNotFoundError:
        return not_found(request)
    if not path.is_file():
        return not_found(request)
    return FileResponse(
        path,
        media_type=found.content_type or "application/octet-stream",
        filename=found.filename,
        content_disposition_type="attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
