"""The "was this helpful?" votes on articles.

One vote per address and article counts a day (`portal.ratelimit`); more than
FEEDBACK_PER_ADDRESS votes get a 429.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.core.contract import Feedback, NotFound
from portal.ratelimit import (
    FEEDBACK_PER_ADDRESS,
    FEEDBACK_PER_TENANT,
    VOTES_PER_ARTICLE,
    client_ip,
    too_many,
)
from portal.request_helpers import redirect_to, tenant_of
from portal.services import services


async def kb_feedback(request: Request, lang: str) -> Response:
    """Store one "was this helpful?" vote; the form's key makes a double submit count once."""
    tenant = tenant_of(request)
    slug = request.path_params["slug"]
    form = await request.form()
    helpful = form.get("helpful")
    key = str(form.get("key") or "")
    if helpful not in ("yes", "no") or not (8 <= len(key) <= 100):
        return JSONResponse(
            {"error": "Send helpful=yes or helpful=no with the form's key."}, status_code=400
        )
    wants_json = "application/json" in request.headers.get("accept", "")
    limits, ip = services(request).rate_limits, client_ip(request)
    refused = limits.check(tenant, (FEEDBACK_PER_ADDRESS, ip), (FEEDBACK_PER_TENANT, ""))
    if refused:
        return too_many(request, refused, page=not wants_json)
    try:
        article = (await services(request).kb.article_page(tenant.id, lang, slug)).article
    except NotFound as exc:
        raise HTTPException(404, "There is no such article in this help center.") from exc
    # One vote per address and article counts; a repeat is thanked as usual, not counted.
    if limits.check(tenant, (VOTES_PER_ARTICLE, f"{ip}:{article.id}")) is None:
        comment = str(form.get("comment") or "")[:2000]
        await services(request).core.kb.record_feedback(
            tenant.id, Feedback(article.id, helpful == "yes", comment), idempotency_key=key
        )
    if wants_json:
        return JSONResponse({"ok": True})
    query = "feedback=thanks&embed=1" if form.get("embed") == "1" else "feedback=thanks"
    return redirect_to(request, "kb_article", query + "#feedback", lang=lang, slug=slug)
