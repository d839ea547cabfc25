"""`/portal/rate/{token}`: the rating link from the resolution mail, usable without a session.

GET shows the form with the mail's answer pre-selected (nothing is stored by opening the link, so
mail scanners that fetch it change nothing); POST stores the rating through the core, which allows
one rating per ticket, changeable for 7 days.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.core.contract import CLOSED_STATUSES, NotFound
from portal.customer import links
from portal.customer.pages import csrf_failed, page
from portal.customer.tickets import MAX_COMMENT, store_rating
from portal.i18n import gettext as _
from portal.labels import CUSTOMER_LABELS
from portal.request_helpers import same_origin, tenant_of
from portal.services import services


def _bad_link(request: Request) -> Response:
    return page(
        request,
        "customer/message.html",
        {
            "title": _("This rating link cannot be used"),
            "message": _("It has expired or is not complete. Sign in to rate your request."),
            "sign_in_again": True,
        },
        status_code=404,
        headers={"Referrer-Policy": "same-origin"},
    )


async def rate_link(request: Request) -> Response:
    tenant = tenant_of(request)
    token = request.path_params["token"]
    found = links.read_rating_link(services(request).signer, token, tenant.id)
    if found is None:
        return _bad_link(request)
    ticket_id, good = found
    core = services(request).core
    try:
        ticket = await core.tickets.get_ticket(tenant.id, ticket_id)
    except NotFound:
        return _bad_link(request)
    rating = await core.tickets.get_rating(tenant.id, ticket.id)
    context = {
        "ticket": ticket,
        "token": token,
        "good": good,
        "comment": rating.comment if rating else "",
        "rating": rating,
        "closed": ticket.status in CLOSED_STATUSES,
        **CUSTOMER_LABELS,
    }
    if request.method == "POST":
        if not same_origin(request):
            return csrf_failed(request)
        form = await request.form()
        choice = form.get("good")
        comment = str(form.get("comment", "")).strip()[:MAX_COMMENT]
        context["comment"] = comment
        if choice not in ("1", "0"):
            context["error"] = _("Choose good or bad.")
            return page(request, "customer/rate.html", context, status_code=400)
        context["good"] = choice == "1"
        error = await store_rating(request, ticket, choice == "1", comment)
        if error:
            context["error"] = error
            return page(request, "customer/rate.html", context, status_code=409)
        context["rating"] = await core.tickets.get_rating(tenant.id, ticket.id)
        context["saved"] = True
    return page(request, "customer/rate.html", context, headers={"Referrer-Policy": "same-origin"})
