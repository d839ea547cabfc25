"""The agent console's ticket pages: the list, one ticket, replies, notes, status, assignee, files.

Every page needs a signed-in agent with role "agent" or "admin" (the session, roles and CSRF
checks are `portal.admin.auth.require_agent`'s). Everything goes through the core contract.

- A ticket, attachment or agent id that is not this tenant's is a 404, the same as one that does
  not exist, so ids of other tenants cannot be probed.
- Each action is Post/Redirect/Get: a 303 back to the ticket with `?done=...`, which the page
  turns into a flash message. Invalid input re-renders the page with a 400 and keeps the text.
- The reply form carries a fresh idempotency key on every render; the core makes one reply per
  key, so a double click or a resent form adds one reply. Keys are namespaced by agent.
- Internal notes and public replies come from the same form: the button pressed says which.
  A post without a valid choice is refused rather than guessed, so a note is never made public
  by accident.
- Attachments are sent with `Content-Disposition: attachment` and a sandboxing CSP, never shown
  inline, and only to agents of the tenant that owns them.
- A requester's email is marked "Unverified" unless the customer proved it by following a magic
  link: anyone can type any address into a web form. `mailto:` links carry the address encoded.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.attachments import download_response
from portal.core.contract import (
    TICKET_STATUSES,
    Conflict,
    HelpdeskCore,
    NotFound,
    ReplyDraft,
    Ticket,
)
from portal.i18n import gettext
from portal.labels import STAFF_LABELS, staff_status_label
from portal.request_helpers import agent_of, db_id, form_text, redirect_to, tenant_of
from portal.services import services
from portal.urls import path_for

log = logging.getLogger(__name__)

PAGE_SIZE = 25
MAX_PAGE = 100_000
MAX_QUERY = 200
MAX_REPLY = 50_000
STATES = ("open", "closed", "all")
DEFAULT_STATE = "open"
REPLY_ACTIONS = ("reply", "note")
DONE = ("reply", "note", "status", "assign")
KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _no_ticket() -> str:
    return gettext("There is no such ticket.")


async def verified_customers(core: HelpdeskCore, tenant_id: int, ids: Iterable[int]) -> set[int]:
    """Which of these customers proved their email address (followed a magic link sent to it).

    A ticket from a web form carries whatever address was typed, so agents are shown the others
    as unverified. A customer that went away meanwhile counts as unverified.
    """
    verified: set[int] = set()
    for customer_id in dict.fromkeys(ids):
        try:
            customer = await core.customers.get_customer(tenant_id, customer_id)
        except NotFound:
            continue
        if customer.email_verified_at is not None:
            verified.add(customer_id)
    return verified


async def _get_ticket(request: Request) -> Ticket:
    try:
        return await services(request).core.tickets.get_ticket(
            tenant_of(request).id, db_id(request, "id", _no_ticket())
        )
    except NotFound as exc:
        raise HTTPException(404, _no_ticket()) from exc


def _back_to_ticket(request: Request, ticket: Ticket, done: str, anchor: str = "") -> Response:
    return redirect_to(request, "agent_ticket", f"done={done}{anchor}", id=ticket.id)


def _page_number(raw: str | None) -> int:
    if not raw or not raw.isdigit() or len(raw) > 6:
        return 1
    return min(max(int(raw), 1), MAX_PAGE)


# ------------------------------------------------------------------ the ticket list
async def home(request: Request) -> Response:
    return redirect_to(request, "agent_tickets")


@require_agent("agent")
async def tickets(request: Request) -> Response:
    params = request.query_params
    state = params.get("state", DEFAULT_STATE)
    state = state if state in STATES else DEFAULT_STATE
    query = params.get("q", "").strip()[:MAX_QUERY]
    page = _page_number(params.get("page"))
    found = await services(request).core.tickets.list_tickets(
        tenant_of(request).id,
        state=None if state == "all" else state,
        query=query,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    pages = max(1, math.ceil(found.total / PAGE_SIZE))
    path = path_for(request, "agent_tickets")

    def page_url(number: int) -> str:
        values = {"state": state, "q": query, "page": str(number)}
        return f"{path}?{urlencode({k: v for k, v in values.items() if v})}"

    return admin_page(
        request,
        "agent/tickets.html",
        {
            "tickets": found.tickets,
            "verified_customers": await verified_customers(
                services(request).core,
                tenant_of(request).id,
                (t.customer_id for t in found.tickets),
            ),
            "total": found.total,
            "state": state,
            "query": query,
            "page": page,
            "pages": pages,
            "previous_url": page_url(page - 1) if page > 1 else "",
            "next_url": page_url(page + 1) if page < pages else "",
            **STAFF_LABELS,
        },
    )


# ------------------------------------------------------------------ one ticket
def _flash(done: str, ticket: Ticket) -> str:
    if done == "reply":
        return gettext("Your reply is sent.")
    if done == "note":
        return gettext("The internal note is added.")
    if done == "status":
        status = staff_status_label(ticket.status)
        return gettext("The status is now %(status)s.") % {"status": status}
    if done == "assign":
        if ticket.assignee_agent_id is None:
            return gettext("The ticket is unassigned.")
        return gettext("The ticket is assigned to %(name)s.") % {"name": ticket.assignee_name}
    return ""


async def _ticket_page(
    request: Request,
    ticket: Ticket,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    core = services(request).core
    tenant = tenant_of(request)
    try:
        replies = await core.tickets.list_replies(tenant.id, ticket.id, include_internal=True)
        rating = await core.tickets.get_rating(tenant.id, ticket.id)
    except NotFound as exc:  # deleted while we were looking
        raise HTTPException(404, _no_ticket()) from exc
    agents = await core.tenants.list_agents(tenant.id)
    verified = await verified_customers(core, tenant.id, [ticket.customer_id])
    done = request.query_params.get("done", "") if status_code == 200 else ""
    return admin_page(
        request,
        "agent/ticket.html",
        {
            "ticket": ticket,
            "requester_verified": ticket.customer_id in verified,
            "replies": replies,
            "rating": rating,
            "agents": [a for a in agents if a.id != agent_of(request).id],
            "statuses": TICKET_STATUSES,
            "flash": _flash(done, ticket) if done in DONE else "",
            "values": {"body": "", "action": ""} | (values or {}),
            "errors": errors or {},
            "idempotency_key": secrets.token_urlsafe(24),
            **STAFF_LABELS,
        },
        status_code=status_code,
    )


@require_agent("agent")
async def ticket(request: Request) -> Response:
    return await _ticket_page(request, await _get_ticket(request))


@require_agent("agent")
async def ticket_reply(request: Request) -> Response:
    the_ticket = await _get_ticket(request)
    form = await request.form()
    raw = form.get("body")
    body = raw.replace("\r\n", "\n").strip() if isinstance(raw, str) else ""
    action = form_text(form, "action")
    key = form_text(form, "idempotency_key")
    values = {"body": body, "action": action}
    errors: dict[str, str] = {}
    if not body:
        errors["body"] = gettext("Write a message first.")
    elif len(body) > MAX_REPLY:
        errors["body"] = gettext("Use at most %(max)d characters.") % {"max": MAX_REPLY}
    if action not in REPLY_ACTIONS:
        errors["reply"] = gettext("Choose “Send reply” or “Add internal note”; nothing was sent.")
    elif not KEY_RE.fullmatch(key):
        errors["reply"] = gettext(
            "The form was incomplete, so nothing was sent. Check the message and send it again."
        )
    if errors:
        return await _ticket_page(
            request, the_ticket, values=values, errors=errors, status_code=400
        )
    agent = agent_of(request)
    try:
        # Two clicks racing with one key are settled by the core: the second gets the first reply.
        reply = await services(request).core.tickets.add_reply(
            tenant_of(request).id,
            the_ticket.id,
            ReplyDraft(
                author_type="agent", author_id=agent.id, body=body, internal=action == "note"
            ),
            f"agent:{agent.id}:{key}",
        )
    except NotFound as exc:
        raise HTTPException(404, _no_ticket()) from exc
    return _back_to_ticket(request, the_ticket, action, f"#reply-{reply.id}")


@require_agent("agent")
async def ticket_status(request: Request) -> Response:
    the_ticket = await _get_ticket(request)
    status = form_text(await request.form(), "status")
    if status not in TICKET_STATUSES:
        errors = {"status": gettext("Choose a status from the list.")}
        return await _ticket_page(request, the_ticket, errors=errors, status_code=400)
    try:
        await services(request).core.tickets.set_ticket_status(
            tenant_of(request).id, the_ticket.id, status, agent_id=agent_of(request).id
        )
    except NotFound as exc:
        raise HTTPException(404, _no_ticket()) from exc
    except Conflict:
        errors = {"status": gettext("Choose a status from the list.")}
        return await _ticket_page(request, the_ticket, errors=errors, status_code=400)
    return _back_to_ticket(request, the_ticket, "status")


async def _chosen_assignee(request: Request, choice: str) -> tuple[bool, int | None]:
    """(valid, agent id or None for nobody) for the assign form's `assignee` value."""
    if choice == "none":
        return True, None
    if choice == "me":
        return True, agent_of(request).id
    if not choice.isdigit() or len(choice) > 18:
        return False, None
    agent_id = int(choice)
    agents = await services(request).core.tenants.list_agents(tenant_of(request).id)
    return any(a.id == agent_id for a in agents), agent_id


@require_agent("agent")
async def ticket_assign(request: Request) -> Response:
    the_ticket = await _get_ticket(request)
    valid, agent_id = await _chosen_assignee(request, form_text(await request.form(), "assignee"))
    if not valid:
        errors = {"assignee": gettext("Choose an agent from the list.")}
        return await _ticket_page(request, the_ticket, errors=errors, status_code=400)
    if agent_id != the_ticket.assignee_agent_id:
        try:
            await services(request).core.tickets.assign_ticket(
                tenant_of(request).id, the_ticket.id, agent_id
            )
        except NotFound:
            # The ticket or the agent went away meanwhile: look again to tell which.
            the_ticket = await _get_ticket(request)
            errors = {"assignee": gettext("Choose an agent from the list.")}
            return await _ticket_page(request, the_ticket, errors=errors, status_code=400)
    return _back_to_ticket(request, the_ticket, "assign")


# ------------------------------------------------------------------ attachments
@require_agent("agent")
async def attachment(request: Request) -> Response:
    message = gettext("There is no such file.")
    tenant = tenant_of(request)
    try:
        found = await services(request).core.tickets.get_attachment(
            tenant.id, db_id(request, "id", message)
        )
        if found.ticket_id is None or found.tenant_id != tenant.id:
            raise NotFound("not a ticket attachment of this tenant")
    except NotFound as exc:
        raise HTTPException(404, message) from exc
    path = services(request).attachments.stored(tenant.id, found.storage_key)
    if path is None:
        raise HTTPException(404, message)
    return download_response(path, found)
