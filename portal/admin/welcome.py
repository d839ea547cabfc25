"""The first admin's welcome link: choose a password, once (`portal.provisioning` makes it).

GET shows the form and spends nothing, so a mail scanner that follows the link does no harm;
the POST that sets the password spends the link's token id, so the link works once. The form is
protected like the login form (pre-session nonce cookie and token).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.admin.auth import (
    admin_page,
    csrf_failed,
    drop_login_cookie,
    login_csrf_ok,
    login_csrf_token,
    login_nonce,
    set_login_cookie,
)
from portal.core.contract import Agent, NotFound
from portal.i18n import gettext
from portal.provisioning import Welcome, read_welcome
from portal.request_helpers import tenant_of
from portal.security import HashingBusy, hash_password_bounded
from portal.services import services
from portal.sessions.staff import sign_in

MIN_PASSWORD = 8
MAX_PASSWORD = 1024


async def _welcomed(request: Request) -> tuple[Welcome, Agent] | None:
    """The link's agent, if the link is genuine, unexpired and for this tenant."""
    welcome = read_welcome(services(request).signer, request.path_params["token"])
    if welcome is None or welcome.tenant_id != tenant_of(request).id:
        return None
    try:
        agent = await services(request).core.tenants.get_agent(welcome.tenant_id, welcome.agent_id)
    except NotFound:
        return None
    return welcome, agent


def _page(
    request: Request, nonce: str, agent: Agent | None, *, error: str = "", status_code: int = 200
) -> Response:
    context = {"welcome_agent": agent, "login_token": login_csrf_token(request, nonce)}
    return admin_page(
        request, "admin/welcome.html", {**context, "error": error}, status_code=status_code
    )


async def welcome(request: Request) -> Response:
    nonce, new_nonce = login_nonce(request)
    found = await _welcomed(request)
    if found is None:
        error = gettext(
            "This link is not valid or has expired. Ask whoever set up your help desk for a "
            "new one."
        )
        return _page(request, nonce, None, error=error, status_code=404)
    welcome, agent = found
    if request.method != "POST":
        response = _page(request, nonce, agent)
        if new_nonce:
            set_login_cookie(response, request, nonce)
        return response
    if not await login_csrf_ok(request):
        return csrf_failed(request)
    form = await request.form()
    password, repeated = form.get("password"), form.get("password_again")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        error = gettext("Choose a password of at least %(num)d characters.") % {"num": MIN_PASSWORD}
        return _page(request, nonce, agent, error=error, status_code=400)
    if password != repeated:
        error = gettext("The two passwords differ. Type the same password twice.")
        return _page(request, nonce, agent, error=error, status_code=400)
    try:
        # Hashed before the link is spent: a busy hashing queue must leave the link usable.
        password_hash = await hash_password_bounded(password)
    except HashingBusy:
        error = gettext("Sign-in is busy right now. Try again in a few seconds.")
        return _page(request, nonce, agent, error=error, status_code=503)
    core = services(request).core
    if not await core.customers.spend_token(welcome.token_id, welcome.expires_at):
        error = gettext("This link was used already. Sign in with the password you chose.")
        return _page(request, nonce, None, error=error, status_code=410)
    await core.tenants.set_agent_password(agent.tenant_id, agent.id, password_hash)
    response = RedirectResponse(request.url_for("admin_home").path, status_code=303)
    await sign_in(response, request, agent)
    drop_login_cookie(response)
    return response
