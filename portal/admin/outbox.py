"""Admin page for the edge's outbox: writes the remote core refused for good, with Retry and
Discard, and writes still waiting to be sent, with their age and attempts.

Only an edge on a remote core has an outbox; on the embedded core the page says there is none.
Set-aside writes hold nothing else back; a retried one is due at once, with the writes that
were set aside because they waited on it (replies to a refused ticket).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.edge.outbox.rows import PENDING, SET_ASIDE, Row, now
from portal.i18n import gettext
from portal.request_helpers import form_text, redirect_to, tenant_of
from portal.services import services

MAX_SUMMARY = 120


def _kind_label(kind: str) -> str:
    labels = {
        "ticket": gettext("New request"),
        "reply": gettext("Reply"),
        "rating": gettext("Rating"),
        "feedback": gettext("Article feedback"),
        "deflection": gettext("Suggestion opened"),
        "visit": gettext("Form visit"),
        "chat": gettext("Chat message"),
    }
    return labels.get(kind, kind)


def _summary(row: Row) -> str:
    """What the write says, in a line: a request's subject and sender, a reply's text."""
    args = row.args
    draft = args.get("draft") or {}
    if row.kind == "ticket":
        text = f"{draft.get('subject', '')} ({draft.get('requester_email', '')})"
    elif row.kind in ("reply", "chat"):
        text = str(draft.get("body", ""))
    elif row.kind == "rating":
        text = ("+ " if args.get("good") else "- ") + str(args.get("comment", ""))
    else:
        text = ""
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def _row(row: Row) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "kind": _kind_label(row.kind),
        "summary": _summary(row),
        "created_at": row.created_at,
        "age_s": int((now() - row.created_at).total_seconds()),
        "attempts": row.attempts,
        "reason": row.reason,
    }


async def _page(request: Request, *, error: str = "", status: int = 200) -> Response:
    edge = services(request).outbox
    tenant = tenant_of(request)
    held: list[dict[str, Any]] = []
    waiting: list[dict[str, Any]] = []
    if edge is not None:
        store = edge.outbox.store
        held = [_row(r) for r in await store.listing(tenant.id, (SET_ASIDE,))]
        waiting = [_row(r) for r in await store.listing(tenant.id, (PENDING,))]
    return admin_page(
        request,
        "admin/outbox.html",
        {
            "has_outbox": edge is not None,
            "held": held,
            "waiting": waiting,
            "error": error,
            "done": request.query_params.get("done", ""),
            "nav": "outbox",
        },
        status_code=status,
    )


@require_agent("admin")
async def outbox_page(request: Request) -> Response:
    return await _page(request)


async def _act(request: Request, action: str) -> Response:
    edge = services(request).outbox
    reference = form_text(await request.form(), "reference")[:20]
    store = edge.outbox.store if edge is not None else None
    if action == "retry":
        done = store is not None and await store.retry(tenant_of(request).id, reference)
    else:
        done = store is not None and await store.discard(tenant_of(request).id, reference)
    if not done:
        error = gettext("There is no such held write: it may have been retried or discarded.")
        return await _page(request, error=error, status=400)
    if edge is not None:
        edge.outbox.changed(tenant_of(request).id)
    return redirect_to(request, "admin_outbox", f"done={action}")


@require_agent("admin")
async def outbox_retry(request: Request) -> Response:
    """Send a held write again now (with the writes held because they waited on it)."""
    return await _act(request, "retry")


@require_agent("admin")
async def outbox_discard(request: Request) -> Response:
    """Give up a held write: it is never sent (and stays listed nowhere)."""
    return await _act(request, "discard")
