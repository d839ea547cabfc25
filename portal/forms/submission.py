"""The one submission pipeline of the form page and the form API.

Both handlers only shape the input (body, tokens, idempotency key) and the answer (a page or
JSON); `submit` does the rest, in this order: the honeypot (filled: pretend success, create
nothing), validation, the attachments, the ticket (once per idempotency key, the same reference on
every retry). The ticket carries the form visit's key, and the core marks the visit's opened
suggestions as followed by a ticket in the ticket's own transaction: the deflection summary
counts only suggestions that were opened without a ticket following. The per-IP and per-tenant rate
limits (429 with Retry-After) are the handlers' first step, before the body is read.

A file's type is sniffed once (`Upload.content_type`): validation checks it, and the store files
it under it. `validate` is the one check of what a ticket may contain, so the attachment store is
not asked to check the same files against the same limits again.

There is no retry here: the core numbers tickets from a per-tenant counter and tries again itself
when a number was taken anyway, and a `Conflict` means it gave up. That is answered 503 ("send it
again"), and the idempotency key makes the visitor's resend safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.requests import Request

from portal.attachments import AttachmentStore, Limits, Upload
from portal.core.contract import (
    Conflict,
    Department,
    Form,
    HelpdeskCore,
    NotFound,
    Tenant,
    Ticket,
    TicketDraft,
)
from portal.forms.abuse import honeypot_filled
from portal.forms.lookup import form_departments
from portal.forms.validation import DEPARTMENT, Outcome, Submission, validate
from portal.i18n import gettext
from portal.request_helpers import tenant_of
from portal.services import services


@dataclass(frozen=True)
class Result:
    """What became of a submission; the page and the API each shape their answer from it."""

    # The values to show again and the per-field errors (none when a ticket was made).
    outcome: Outcome = field(default_factory=lambda: Outcome(None))
    ticket: Ticket | None = None
    ignored: bool = False  # the honeypot was filled: answer as if it worked, create nothing
    busy: bool = False  # the core could not store it just now: the visitor may send it again


async def submit(
    request: Request,
    form: Form,
    data: dict[str, list[str]],
    uploads: list[Upload],
    *,
    limits: Limits,
    idempotency_key: str,
    visit_key: str | None,
    source: str,
    departments: list[Department] | None = None,
    errors: Mapping[str, str] | None = None,
) -> Result:
    """Honeypot, validation, attachments, ticket and visit mark for one submission.

    `departments` are the form's, when the caller has them already; `errors` are problems the
    caller found in its own input (the API's idempotency key): with any, nothing is created.
    """
    if honeypot_filled(data):
        return Result(ignored=True)
    if departments is None:
        departments = await form_departments(request, form)
    outcome = validate(form, departments, data, uploads, limits)
    found = {**(errors or {}), **outcome.errors}
    if found or outcome.submission is None:
        return Result(Outcome(None, found, outcome.values))
    try:
        ticket = await create_ticket(
            services(request).core,
            services(request).attachments,
            tenant_of(request),
            form,
            outcome.submission,
            idempotency_key=idempotency_key,
            visit_key=visit_key,
            source=source,
        )
    except Conflict:
        return Result(Outcome(None, {}, outcome.values), busy=True)
    except NotFound:  # the department went away meanwhile
        message = gettext("Choose one of the listed options.")
        return Result(Outcome(None, {DEPARTMENT: message}, outcome.values))
    return Result(outcome, ticket=ticket)


async def create_ticket(
    core: HelpdeskCore,
    store: AttachmentStore,
    tenant: Tenant,
    form: Form,
    submission: Submission,
    *,
    idempotency_key: str,
    visit_key: str | None,
    source: str,
) -> Ticket:
    """Store the (validated) files, create the ticket (once per key) from the visit `visit_key`.

    Raises Conflict when the core could not store the ticket (answered 503: try again) and
    NotFound when the chosen department is gone.
    """
    drafts = tuple(
        store.save(tenant.id, u.filename, u.data, content_type=u.content_type)
        for u in submission.uploads
    )
    draft = TicketDraft(
        subject=submission.subject,
        description=submission.description,
        requester_email=submission.email,
        requester_name=submission.name,
        priority=submission.priority,
        kind=form.kind,
        department_id=submission.department_id,
        custom_fields=dict(submission.custom_fields),
        source=source,
        attachments=drafts,
        visit_key=visit_key or "",
    )
    return await core.tickets.create_ticket(tenant.id, draft, f"form:{form.id}:{idempotency_key}")


def busy_message() -> str:
    """What a visitor is told when the core could not store the ticket just now."""
    return gettext("Your request could not be saved just now. Please send it again.")
