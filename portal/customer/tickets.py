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
from starlette.responses import RedirectResponse, Response
from starlette.types import Scope

from portal.asgi_headers import header
from portal.attachments import (
    AttachmentRejected,
    Limits,
    Upload,
    check,
    download_response,
    upload_limits,
)
from portal.core.contract import (
    CLOSED_STATUSES,
    AttachmentDraft,
    Capabilities,
    Conflict,
    Customer,
    NotFound,
    Reply,
    ReplyDraft,
    Tenant,
    Ticket,
)
from portal.customer.pages import keepable_page, kept_page, not_found, page, require_customer
from portal.edge.outbox.domains import PendingTicket
from portal.i18n import gettext as _
from portal.i18n import request_language
from portal.labels import CUSTOMER_LABELS, status_label
from portal.navigation import site_nav
from portal.request_helpers import customer_of, tenant_of
from portal.services import services
from portal.urls import path_for

PAGE_SIZE = 25
MAX_BODY = 20_000
MAX_COMMENT = 2_000
KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


# ------------------------------------------------------------------ visibility
def sees_organization(tenant: Tenant, customer: Customer, capabilities: Capabilities) -> bool:
    return (
        capabilities.organization_tickets
        and tenant.settings.get("ticket_visibility", "own") == "organization"
        and customer.organization_id is not None
    )


def can_see(tenant: Tenant, customer: Customer, ticket: Ticket, capabilities: Capabilities) -> bool:
    if ticket.tenant_id != tenant.id:
        return False
    if ticket.customer_id == customer.id:
        return True
    return sees_organization(tenant, customer, capabilities) and ticket.organization_id == (
        customer.organization_id
    )


async def visible_ticket(request: Request, ticket_id: int) -> Ticket | None:
    """The ticket if the signed-in customer may see it; None both for others' and missing ones."""
    tenant = tenant_of(request)
    try:
        ticket = await services(request).core.tickets.get_ticket(tenant.id, ticket_id)
    except NotFound:
        return None
    capabilities = services(request).core.capabilities
    return ticket if can_see(tenant, customer_of(request), ticket, capabilities) else None


# ------------------------------------------------------------------ list
class ListedTicket(NamedTuple):
    """A row of the ticket list as the page prints it: every text made here, once, since each
    attribute read or call in a template costs several times as much as in Python."""

    number: int | str  # a ticket still in the edge's outbox shows its local reference
    href: str  # "" while the ticket is in the outbox (it has no page yet)
    subject: str
    status: str
    status_text: str
    requester: str
    updated_iso: str
    updated_day: str


def listed(request: Request, tickets: list[Ticket]) -> list[ListedTicket]:
    """The page's rows: each status named once per page, each date cut from its ISO form."""
    names = {status: status_label(status) for status in {t.status for t in tickets}}
    rows = []
    for ticket in tickets:
        updated = ticket.updated_at.isoformat()
        if isinstance(ticket, PendingTicket):
            rows.append(_listed_pending(ticket, updated))
            continue
        rows.append(
            ListedTicket(
                ticket.number,
                path_for(request, "customer_ticket", id=ticket.id),
                ticket.subject,
                ticket.status,
                names[ticket.status],
                ticket.requester_name or ticket.requester_email,
                updated,
                updated[:10],  # YYYY-MM-DD, in UTC as the ISO form is
            )
        )
    return rows


def _listed_pending(ticket: PendingTicket, updated: str) -> ListedTicket:
    status = "sending" if ticket.sending else "held"
    text = _("Sending") if ticket.sending else _("Held: we are looking into it")
    requester = ticket.requester_name or ticket.requester_email
    return ListedTicket(
        ticket.reference, "", ticket.subject, status, text, requester, updated, updated[:10]
    )


def _list_url(path: str, state: str, query: str, number: int = 1) -> str:
    """The list's URL for a filter, a search and a page number (1 is left out)."""
    args = {k: v for k, v in (("state", state), ("q", query)) if v}
    if number > 1:
        args["page"] = str(number)
    return path + (f"?{urlencode(args)}" if args else "")


async def portal_home(request: Request) -> Response:
    """`/portal` goes to the ticket list (which asks for a sign-in first when needed)."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(path_for(request, "customer_tickets") + query, status_code=302)


@require_customer
async def ticket_list(request: Request) -> Response:
    """The customer's tickets, one page of a filter and a search; kept as rendered per variant
    until a ticket event of the tenant (`portal.customer.lists`)."""
    tenant = tenant_of(request)
    customer = customer_of(request)
    app = services(request)
    organization = sees_organization(tenant, customer, app.core.capabilities)
    language = request_language(request)
    nav = site_nav(request, language)
    scope = request.scope
    # All the page depends on besides the tenant (which it is kept with) and the tickets: the
    # customer as they are now (whose tickets or organization's; the header shows the address),
    # the query as sent (the filter, search, page and `embed=1`, parsed only to make a page),
    # whether it is framed, the language and the header.
    variant = (customer, scope["query_string"], _fetch_dest(scope), language, nav)
    kept = app.ticket_lists.kept(tenant, variant)
    if kept is None:
        generation = app.ticket_lists.generation(tenant.id)
        context = await _list_context(request, organization)
        kept = keepable_page(request, "customer/tickets.html", {**context, "site_nav": nav})
        app.ticket_lists.keep(variant, generation, kept)
    return kept_page(request, kept)


def _fetch_dest(scope: Scope) -> bytes:
    """The request's `Sec-Fetch-Dest` (whether it is framed, `portal.embedding`), as sent."""
    return header(scope, b"sec-fetch-dest") or b""


async def _list_context(request: Request, organization: bool) -> dict[str, Any]:
    """What the list page shows besides the header: read from the core, shaped for the page."""
    params = request.query_params
    state = params.get("state", "")
    state = state if state in ("open", "closed") else ""
    query = params.get("q", "").strip()[:200]
    try:
        number = max(1, int(params.get("page", "1")))
    except ValueError:
        number = 1
    tenant = tenant_of(request)
    customer = customer_of(request)
    scope: dict[str, Any] = (
        {"organization_id": customer.organization_id}
        if organization
        else {"customer_id": customer.id}
    )
    result = await services(request).core.tickets.list_tickets(
        tenant.id,
        **scope,
        state=state or None,
        query=query,
        offset=(number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    path = path_for(request, "customer_tickets")
    tabs = [
        (_list_url(path, value, query), label, value == state)
        for value, label in (("", _("All")), ("open", _("Open")), ("closed", _("Closed")))
    ]
    return {
        "tickets": listed(request, result.tickets),
        "total": result.total,
        "state": state,
        "query": query,
        "tabs": tabs,
        "page_number": number,
        "pages": pages,
        "previous_url": _list_url(path, state, query, number - 1) if number > 1 else "",
        "next_url": _list_url(path, state, query, number + 1) if number < pages else "",
        "organization": organization,
        "nav": "tickets",
    }


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
    tenant = tenant_of(request)
    core = services(request).core
    replies: list[Reply] = await core.tickets.list_replies(tenant.id, ticket.id)
    ratings = core.capabilities.ratings
    rating = await core.tickets.get_rating(tenant.id, ticket.id) if ratings else None
    expected = str(tenant.settings.get("expected_response", "") or "").strip()
    return page(
        request,
        "customer/ticket.html",
        {
            "ticket": ticket,
            "replies": replies,
            "ratings": ratings,
            "rating": rating,
            "closed": ticket.status in CLOSED_STATUSES,
            "expected_response": expected if ticket.is_open else "",
            "idempotency_key": secrets.token_urlsafe(24),
            "reply_error": reply_error,
            "reply_body": reply_body,
            "rating_error": rating_error,
            "rated": request.query_params.get("rated") == "1",
            # Replies still in the outbox have negative ids, below every stored one.
            "last_reply_id": max((reply.id for reply in replies), default=0),
            "limits": upload_limits(tenant, core.capabilities),
            "nav": "tickets",
            **CUSTOMER_LABELS,
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
def _files(form: Any) -> list[UploadFile]:
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    return [f for f in files if f.filename or (f.size or 0) > 0]


async def _read(files: list[UploadFile], limits: Limits) -> list[Upload]:
    """The files, each read up to one byte past the tenant's limit (enough to refuse it)."""
    return [
        Upload("files", file.filename or "file", await file.read(limits.max_bytes + 1))
        for file in files
    ]


@require_customer
async def add_reply(request: Request) -> Response:
    ticket = await visible_ticket(request, request.path_params["id"])
    if ticket is None:
        return not_found(request)
    tenant = tenant_of(request)
    customer = customer_of(request)
    form = await request.form()
    body = str(form.get("body", "")).replace("\r\n", "\n").strip()
    files = _files(form)
    if len(body) > MAX_BODY:
        return await _ticket_page(
            request,
            ticket,
            status_code=400,
            reply_body=body,
            reply_error=_("Your message is too long; keep it under %(num)d characters.")
            % {"num": MAX_BODY},
        )
    if not body and not files:
        return await _ticket_page(
            request,
            ticket,
            status_code=400,
            reply_error=_("Write a message or attach a file."),
        )
    store = services(request).attachments
    limits = upload_limits(tenant, services(request).core.capabilities)
    uploads = await _read(files, limits)
    try:
        check(uploads, limits)
    except AttachmentRejected as exc:
        return await _ticket_page(
            request, ticket, status_code=400, reply_body=body, reply_error=str(exc)
        )
    drafts: tuple[AttachmentDraft, ...] = tuple(
        store.save(tenant.id, u.filename, u.data, content_type=u.content_type) for u in uploads
    )
    key = str(form.get("idempotency_key", ""))
    if not KEY_RE.fullmatch(key):
        key = secrets.token_urlsafe(24)
    reply = await services(request).core.tickets.add_reply(
        tenant.id,
        ticket.id,
        ReplyDraft(
            author_type="customer",
            author_id=customer.id,
            body=body,
            internal=False,
            attachments=drafts,
        ),
        f"portal:{customer.id}:{key}",
    )
    # The customer's next list shows it even before the core's event reaches the cache.
    services(request).ticket_lists.invalidate(tenant.id)
    path = path_for(request, "customer_ticket", id=ticket.id)
    return RedirectResponse(f"{path}#reply-{reply.id}", status_code=303)


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
    path = path_for(request, "customer_ticket", id=ticket.id)
    return RedirectResponse(f"{path}?rated=1#rating", status_code=303)


async def store_rating(request: Request, ticket: Ticket, good: bool, comment: str) -> str:
    """Rate through the core; an error message in the page's language when it refuses."""
    core = services(request).core
    try:
        await core.tickets.rate_ticket(ticket.tenant_id, ticket.id, good=good, comment=comment)
    except Conflict:
        current = await core.tickets.get_ticket(ticket.tenant_id, ticket.id)
        if current.status not in CLOSED_STATUSES:
            return _("You can rate this request once it is resolved.")
        return _("A rating can be changed for 7 days after it was given; this one can no longer.")
    services(request).ticket_lists.invalidate(ticket.tenant_id)  # as after a reply
    return ""


# ------------------------------------------------------------------ attachments
@require_customer
async def attachment(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    try:
        found = await core.tickets.get_attachment(tenant.id, request.path_params["id"])
    except NotFound:
        return not_found(request)
    if found.ticket_id is None:
        return not_found(request)
    ticket = await visible_ticket(request, found.ticket_id)
    if ticket is None:
        return not_found(request)
    public = {reply.id for reply in await core.tickets.list_replies(tenant.id, ticket.id)}
    if found.reply_id not in public:
        return not_found(request)  # a file on an internal note
    store = services(request).attachments
    path = store.stored(tenant.id, found.storage_key)
    if path is None:
        return not_found(request)
    return download_response(path, found)
