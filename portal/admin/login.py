"""The staff sign-in page, sign-out, and sign-out everywhere.

The session behind them is `portal.sessions.staff`; the login CSRF and throttle are in `auth.py`.
Every limit is checked before any password hashing, so a refused attempt costs next to nothing.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.admin.auth import (
    admin_page,
    csrf_failed,
    drop_login_cookie,
    login_account,
    login_csrf_ok,
    login_csrf_token,
    login_nonce,
    require_agent,
    set_login_cookie,
)
from portal.core.contract import NotFound
from portal.csrf import form_csrf_ok
from portal.i18n import gettext, ngettext
from portal.ratelimit import client_ip
from portal.redirects import safe_staff_next
from portal.request_helpers import agent_of, form_text, redirect_to, tenant_of
from portal.security import HashingBusy, hash_password_bounded, verify_password_bounded
from portal.services import services
from portal.sessions import store
from portal.sessions.staff import cookie_session_id, current_agent, sign_in, sign_out
from portal.urls import path_for

BUSY_RETRY_AFTER = 2  # seconds: a full hashing queue drains in well under that

_dummy_hash: str | None = None


def _login_page(
    request: Request,
    nonce: str,
    *,
    email: str = "",
    next_url: str,
    error: str = "",
    status_code: int = 200,
) -> Response:
    context = {
        "login_token": login_csrf_token(request, nonce),
        "email": email,
        "next": next_url,
        "error": error,
        "signed_out": request.query_params.get("signed_out") == "1",
    }
    return admin_page(request, "admin/login.html", context, status_code=status_code)


async def _check_password(agent_hash: str | None, password: str) -> bool:
    """scrypt in a hashing thread; an unknown email costs the same time as a wrong password.

    Raises HashingBusy when every hashing slot and queue place is taken.
    """
    global _dummy_hash
    if agent_hash is None:
        if _dummy_hash is None:
            _dummy_hash = await hash_password_bounded("not-a-real-password")
        await verify_password_bounded(password, _dummy_hash)
        return False
    return await verify_password_bounded(password, agent_hash)


def _refused(
    request: Request, nonce: str, email: str, next_url: str, error: str, status: int, wait: float
) -> Response:
    response = _login_page(
        request, nonce, email=email, next_url=next_url, error=error, status_code=status
    )
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


async def login(request: Request) -> Response:
    nonce, new_nonce = login_nonce(request)
    if request.method != "POST":
        next_url = safe_staff_next(request.query_params.get("next"))
        if await current_agent(request) is not None:
            return RedirectResponse(next_url, status_code=303)
        response = _login_page(request, nonce, next_url=next_url)
        if new_nonce:
            set_login_cookie(response, request, nonce)
        return response

    if not await login_csrf_ok(request):
        response = csrf_failed(request)
        if new_nonce:
            set_login_cookie(response, request, nonce)
        return response
    form = await request.form()
    email = form_text(form, "email")[:320]
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    next_url = safe_staff_next(form_text(form, "next"))
    if not email or not password:
        error = gettext("Enter your email address and password.")
        return _login_page(
            request, nonce, email=email, next_url=next_url, error=error, status_code=400
        )

    # Every limit is checked before any hashing, so a refusal costs next to nothing: first
    # the client address (spraying across emails), then the account's backoff.
    guard = services(request).login_guard
    account, address = login_account(request, email), client_ip(request)
    wait = guard.address_wait(address)
    if wait:
        minutes = max(1, math.ceil(wait / 60))
        error = ngettext(
            "Too many sign-in attempts from your network. Wait %(num)d minute, then try again.",
            "Too many sign-in attempts from your network. Wait %(num)d minutes, then try again.",
            minutes,
        ) % {"num": minutes}
        return _refused(request, nonce, email, next_url, error, 429, wait)
    wait = guard.admit(account, address)
    if wait:
        minutes = max(1, math.ceil(wait / 60))
        error = ngettext(
            "Too many failed sign-in attempts for this email address. "
            "Wait %(num)d minute, then try again.",
            "Too many failed sign-in attempts for this email address. "
            "Wait %(num)d minutes, then try again.",
            minutes,
        ) % {"num": minutes}
        return _refused(request, nonce, email, next_url, error, 429, wait)

    # From here the attempt counts as failed (`admit` recorded it), so parallel guesses
    # cannot slip past the backoff while the password check runs; a success clears it.
    tenant = tenant_of(request)
    try:
        agent = await services(request).core.tenants.get_agent_by_email(tenant.id, email)
    except NotFound:
        agent = None
    try:
        ok = await _check_password(agent.password_hash if agent else None, password[:1024])
    except HashingBusy:
        guard.not_checked(account, address)
        error = gettext("Sign-in is busy right now. Try again in a few seconds.")
        return _refused(request, nonce, email, next_url, error, 503, BUSY_RETRY_AFTER)
    if agent is None or not ok:
        error = gettext("The email address or password is not correct.")
        return _login_page(
            request, nonce, email=email, next_url=next_url, error=error, status_code=400
        )
    guard.succeeded(account, address)
    if agent.role != "admin" and next_url.rstrip("/") == "/admin":
        next_url = path_for(request, "agent_tickets")  # the admin pages would refuse an agent
    response = RedirectResponse(next_url, status_code=303)
    await sign_in(response, request, agent)
    drop_login_cookie(response)
    return response


async def logout(request: Request) -> Response:
    sid = cookie_session_id(request)
    if sid is not None:
        if not await form_csrf_ok(request, sid):
            return csrf_failed(request)
        await store.end(request, sid)
    response = redirect_to(request, "admin_login", "signed_out=1")
    sign_out(response)
    return response


@require_agent("agent")
async def logout_everywhere(request: Request) -> Response:
    """End every session of the signed-in agent, this one included (a copied cookie dies)."""
    await store.end_all(request, store.AGENT, agent_of(request).id)
    response = redirect_to(request, "admin_login", "signed_out=1")
    sign_out(response)
    return response
