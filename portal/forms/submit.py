"""From a request to a ticket: reading the body, storing attachments, creating the ticket."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from portal import jsonsafe
from portal.attachments import AttachmentStore, Limits
from portal.core.contract import Conflict, Form, HelpdeskCore, Tenant, Ticket, TicketDraft
from portal.forms.validation import Submission, Upload

MAX_JSON_BYTES = 1024 * 1024
CREATE_ATTEMPTS = 5
MAX_TEXT_PART = 256 * 1024  # the largest non-file multipart field (description is 20,000 chars)


class BodyError(Exception):
    """The request body cannot be read; `status` is the HTTP status to answer with."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def check_length(request: Request, maximum: int) -> None:
    raw = request.headers.get("content-length")
    if raw is not None and (not raw.isdigit() or int(raw) > maximum):
        raise BodyError(413)


async def read_form(
    request: Request, form: Form, limits: Limits
) -> tuple[dict[str, list[str]], list[Upload]]:
    """Text values (name -> list of values) and uploads of a urlencoded or multipart body."""
    # (The body's size is capped while it streams in: portal.bodylimit, by files_cap.)
    file_inputs = 1 + sum(1 for f in form.fields if f.type == "file")
    try:
        data: FormData = await request.form(
            max_files=limits.max_count * 2 + file_inputs + 5,
            max_fields=200 + 2 * sum(len(f.options) for f in form.fields),
            max_part_size=MAX_TEXT_PART,
        )
    except HTTPException as exc:  # a malformed body, or too many parts
        raise BodyError(400) from exc
    values: dict[str, list[str]] = {}
    uploads: list[Upload] = []
    try:
        for key, value in data.multi_items():
            if isinstance(value, UploadFile):
                if not value.filename and not value.size:
                    continue  # a file input left empty
                content = await value.read(limits.max_bytes + 1)
                uploads.append(Upload(key, value.filename or "file", content))
            else:
                values.setdefault(key, []).append(value)
    finally:
        await data.close()
    return values, uploads


def _as_strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["on"] if value else []
    if isinstance(value, int | float | str):
        return [str(value)]
    if isinstance(value, list):
        return [s for item in value if not isinstance(item, list | dict) for s in _as_strings(item)]
    return []


async def read_json(request: Request) -> dict[str, list[str]]:
    """A JSON object's members as lists of strings (true -> "on", lists stay lists)."""
    check_length(request, MAX_JSON_BYTES)
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise BodyError(413)
    try:
        payload = jsonsafe.loads(body or b"{}")
    except jsonsafe.JSONError as exc:
        raise BodyError(400) from exc
    if not isinstance(payload, dict):
        raise BodyError(400)
    return {str(key): _as_strings(value) for key, value in payload.items()}


def first(data: dict[str, list[str]], name: str) -> str:
    values = data.get(name) or []
    return values[0] if values else ""


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
    """Store the files, create the ticket (once per key) and mark the visit as ticketed.

    Raises AttachmentRejected when the store refuses a file (validation checks the same rules
    first, so this is a second line of defence), and Conflict when the core could not store the
    ticket after a few tries (answered 503: try again).
    """
    files = [(u.filename, u.data) for u in submission.uploads]
    if files:
        store.check(files, Limits.for_tenant(tenant))
    drafts = tuple(store.save(tenant.id, u.filename, u.data) for u in submission.uploads)
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
    )
    key = f"form:{form.id}:{idempotency_key}"
    for attempt in range(CREATE_ATTEMPTS):
        try:
            ticket = await core.create_ticket(tenant.id, draft, key)
            break
        except Conflict:
            # The core gives up when many tickets race for the next number; the key makes a
            # retry safe (it never makes a second ticket).
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
    if visit_key:
        await core.mark_visit_ticketed(tenant.id, visit_key)
    return ticket
