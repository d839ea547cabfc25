"""The admin area: sign-in, dashboard, branding, knowledge base categories and articles.

Every page but the login page needs a signed-in agent with role "admin" (see `auth.py` for the
session, CSRF and throttle). Forms answer 400 with per-field errors and the submitted values
kept; a successful POST redirects (303) to a page that shows a flash message.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from portal import sessions
from portal.admin.auth import (
    admin_page,
    cookie_session_id,
    csrf_failed,
    current_agent,
    form_csrf_ok,
    login_account,
    login_csrf_ok,
    login_csrf_token,
    login_guard,
    login_nonce,
    require_agent,
    safe_next,
    set_login_cookie,
    sign_in,
    sign_out,
)
from portal.admin.chat import routes as chat_routes
from portal.admin.forms import routes as form_builder_routes
from portal.admin.settings import settings
from portal.admin.widget import widget_settings
from portal.admin.widget_keys import routes as widget_key_routes
from portal.core.contract import Article, ArticleDraft, Category, Conflict, NotFound, Tenant
from portal.core.slugs import slugify
from portal.i18n import LANGUAGES
from portal.ratelimit import client_ip
from portal.security import HashingBusy, hash_password_bounded, verify_password_bounded
from portal.templating import gettext, ngettext, page_language, use_language

COLOR_RE = re.compile(r"#[0-9a-fA-F]{6}")
SLUG_RE = re.compile(r"[\w-]+")
MAX_DB_ID = 2**62
MAX_BODY = 200_000
BUSY_RETRY_AFTER = 2  # seconds: a full hashing queue drains in well under that

_dummy_hash: str | None = None


def _tenant(request: Request) -> Tenant:
    return request.state.tenant


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _redirect(request: Request, name: str, query: str = "", **params: Any) -> RedirectResponse:
    path = request.url_for(name, **params).path
    return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


def _not_found(message: str) -> HTTPException:
    return HTTPException(404, message)


def _length_error(value: str, minimum: int, maximum: int) -> str | None:
    if len(value) < minimum:
        return gettext("This field is required.")
    if len(value) > maximum:
        return gettext("Use at most %(max)d characters.") % {"max": maximum}
    return None


# ------------------------------------------------------------------ login and logout
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
    with use_language(page_language(request)):
        nonce, new_nonce = login_nonce(request)
        if request.method != "POST":
            next_url = safe_next(request.query_params.get("next"))
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
        email = _text(form, "email")[:320]
        password = form.get("password")
        password = password if isinstance(password, str) else ""
        next_url = safe_next(_text(form, "next"))
        if not email or not password:
            error = gettext("Enter your email address and password.")
            return _login_page(
                request, nonce, email=email, next_url=next_url, error=error, status_code=400
            )

        # Every limit is checked before any hashing, so a refusal costs next to nothing: first
        # the client address (spraying across emails), then the account's backoff.
        guard = login_guard(request)
        account, address = login_account(request, email), client_ip(request)
        wait = guard.address_wait(address)
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            error = ngettext(
                "Too many sign-in attempts from your network. Wait %(num)d minute, then try again.",
                "Too many sign-in attempts from your network. "
                "Wait %(num)d minutes, then try again.",
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
        tenant = _tenant(request)
        try:
            agent = await request.state.core.get_agent_by_email(tenant.id, email)
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
            next_url = "/agent/tickets"  # the admin pages would refuse an agent
        response = RedirectResponse(next_url, status_code=303)
        await sign_in(response, request, agent)
        return response


async def logout(request: Request) -> Response:
    with use_language(page_language(request)):
        sid = cookie_session_id(request)
        if sid is not None:
            if not await form_csrf_ok(request, sid):
                return csrf_failed(request)
            await sessions.end(request, sid)
        response = _redirect(request, "admin_login", "signed_out=1")
        sign_out(response)
        return response


@require_agent("agent")
async def logout_everywhere(request: Request) -> Response:
    """End every session of the signed-in agent, this one included (a copied cookie dies)."""
    await sessions.end_all(request, sessions.AGENT, request.state.agent.id)
    response = _redirect(request, "admin_login", "signed_out=1")
    sign_out(response)
    return response


# ------------------------------------------------------------------ dashboard
@require_agent("admin")
async def dashboard(request: Request) -> Response:
    tenant = _tenant(request)
    core = request.state.core
    return admin_page(
        request,
        "admin/dashboard.html",
        {
            "missed": await core.missed_searches(tenant.id, limit=50),
            "feedback": await core.feedback_summary(tenant.id),
        },
    )


# ------------------------------------------------------------------ branding
def _url_error(url: str) -> str | None:
    if not url:
        return None
    if len(url) > 1000:
        return gettext("Use at most %(max)d characters.") % {"max": 1000}
    message = gettext("Enter an address that starts with https:// or http://, or leave it empty.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return message
    if not url.lower().startswith(("https://", "http://")):
        return message
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return message
    return None if host else message


def _branding_errors(values: dict[str, str]) -> dict[str, str]:
    from portal.mail import unsafe_name_characters

    errors: dict[str, str] = {}
    if error := _length_error(values["name"], 1, 200):
        errors["name"] = error
    elif unsafe := unsafe_name_characters(values["name"]):
        # The name is the sender name of the tenant's mail: address syntax there is a phishing
        # lure, and invisible characters (line breaks, bidi overrides) are shown by code point.
        shown = " ".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in unsafe)
        message = gettext("These characters are not allowed in the name: %(characters)s")
        errors["name"] = message % {"characters": shown}
    if error := _url_error(values["logo_url"]):
        errors["logo_url"] = error
    if not COLOR_RE.fullmatch(values["primary_color"]):
        errors["primary_color"] = gettext(
            "Enter a colour as # and six hexadecimal digits, e.g. #1f6feb."
        )
    return errors


@require_agent("admin")
async def branding(request: Request) -> Response:
    core = request.state.core
    # Read the tenant afresh: the one on the request may come from the resolver's short cache.
    tenant = await core.get_tenant(_tenant(request).slug)
    if request.method != "POST":
        values = {
            "name": tenant.name,
            "logo_url": tenant.logo_url,
            "primary_color": tenant.primary_color,
        }
        return admin_page(
            request,
            "admin/branding.html",
            {"values": values, "errors": {}, "saved": request.query_params.get("saved") == "1"},
        )
    form = await request.form()
    values = {key: _text(form, key) for key in ("name", "logo_url", "primary_color")}
    errors = _branding_errors(values)
    if errors:
        return admin_page(
            request, "admin/branding.html", {"values": values, "errors": errors}, status_code=400
        )
    await core.update_branding(
        tenant.id,
        name=values["name"],
        logo_url=values["logo_url"],
        primary_color=values["primary_color"].lower(),
    )
    return _redirect(request, "admin_branding", "saved=1")


# ------------------------------------------------------------------ categories
def _trail(category: Category, by_id: dict[int, Category]) -> list[Category]:
    """The category's ancestors from the top down, then the category itself (cycle-safe)."""
    trail = [category]
    seen = {category.id}
    parent_id = category.parent_id
    while parent_id is not None and parent_id in by_id and parent_id not in seen:
        seen.add(parent_id)
        trail.append(by_id[parent_id])
        parent_id = by_id[parent_id].parent_id
    return list(reversed(trail))


def _category_choices(categories: list[Category]) -> list[tuple[str, list[tuple[Category, str]]]]:
    """[(language, [(category, "Parent › Child"), ...]), ...] in LANGUAGES order, tree order."""
    by_id = {c.id: c for c in categories}
    groups = []
    for code in LANGUAGES:
        rows = []
        for category in categories:
            if category.language != code:
                continue
            trail = _trail(category, by_id)
            rows.append(([(c.position, c.name.lower(), c.id) for c in trail], category, trail))
        rows.sort(key=lambda row: row[0])
        if rows:
            groups.append(
                (
                    code,
                    [(category, " › ".join(c.name for c in trail)) for _, category, trail in rows],
                )
            )
    return groups


def _parse_id(raw: str) -> int | None:
    if not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def _db_id(request: Request, name: str) -> int:
    value = request.path_params[name]
    if value > MAX_DB_ID:
        raise _not_found(gettext("There is no such page."))
    return value


async def _categories_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = _tenant(request)
    core = request.state.core
    categories = await core.list_categories(tenant.id)
    counts: dict[int, int] = {}
    for article in await core.list_articles(tenant.id, published_only=False):
        if article.category_id is not None:
            counts[article.category_id] = counts.get(article.category_id, 0) + 1
    default_language = tenant.default_locale if tenant.default_locale in LANGUAGES else "en"
    query = request.query_params
    return admin_page(
        request,
        "admin/categories.html",
        {
            "groups": _category_choices(categories),
            "counts": counts,
            "values": values or {"language": default_language, "name": "", "parent_id": ""},
            "errors": errors or {},
            "created": query.get("created") == "1",
            "deleted": query.get("deleted") == "1",
        },
        status_code=status_code,
    )


@require_agent("admin")
async def categories(request: Request) -> Response:
    if request.method != "POST":
        return await _categories_page(request)
    tenant = _tenant(request)
    core = request.state.core
    form = await request.form()
    values = {key: _text(form, key) for key in ("language", "name", "parent_id")}
    errors: dict[str, str] = {}
    language = values["language"]
    if language not in LANGUAGES:
        errors["language"] = gettext("Choose a language.")
    if error := _length_error(values["name"], 1, 200):
        errors["name"] = error
    parent_id: int | None = None
    if values["parent_id"]:
        parent_id = _parse_id(values["parent_id"])
        parent = None
        if parent_id is not None:
            try:
                parent = await core.get_category(tenant.id, parent_id)
            except NotFound:
                parent = None
        if parent is None or parent.language != language:
            errors["parent_id"] = gettext("Choose a parent category in the same language.")
    if not errors:
        try:
            await core.get_category_by_slug(tenant.id, language, slugify(values["name"]))
        except NotFound:
            pass
        else:
            errors["name"] = gettext("This language has a category with this name already.")
    if errors:
        return await _categories_page(request, values=values, errors=errors, status_code=400)
    await core.ensure_category(tenant.id, language, values["name"], parent_id=parent_id)
    return _redirect(request, "admin_categories", "created=1")


def _descendant_or_self(candidate: Category, category_id: int, by_id: dict[int, Category]) -> bool:
    return any(c.id == category_id for c in _trail(candidate, by_id))


async def _category_page(
    request: Request,
    category: Category,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    tenant = _tenant(request)
    siblings = await request.state.core.list_categories(tenant.id, category.language)
    by_id = {c.id: c for c in siblings}
    parents = [
        (c, label)
        for _, group in _category_choices(siblings)
        for c, label in group
        if not _descendant_or_self(c, category.id, by_id)
    ]
    values = values or {
        "name": category.name,
        "description": category.description,
        "parent_id": str(category.parent_id or ""),
        "position": str(category.position),
    }
    return admin_page(
        request,
        "admin/category.html",
        {
            "category": category,
            "parents": parents,
            "values": values,
            "errors": errors or {},
            "problem": problem,
            "saved": request.query_params.get("saved") == "1",
        },
        status_code=status_code,
    )


async def _get_category(request: Request) -> Category:
    try:
        return await request.state.core.get_category(_tenant(request).id, _db_id(request, "id"))
    except NotFound as exc:
        raise _not_found(gettext("There is no such category.")) from exc


@require_agent("admin")
async def category(request: Request) -> Response:
    the_category = await _get_category(request)
    if request.method != "POST":
        return await _category_page(request, the_category)
    tenant = _tenant(request)
    core = request.state.core
    form = await request.form()
    values = {key: _text(form, key) for key in ("name", "description", "parent_id", "position")}
    errors: dict[str, str] = {}
    if error := _length_error(values["name"], 1, 200):
        errors["name"] = error
    if error := _length_error(values["description"], 0, 2000):
        errors["description"] = error
    parent_id: int | None = None
    if values["parent_id"]:
        siblings = await core.list_categories(tenant.id, the_category.language)
        by_id = {c.id: c for c in siblings}
        parent_id = _parse_id(values["parent_id"])
        parent = by_id.get(parent_id) if parent_id is not None else None
        if parent is None or _descendant_or_self(parent, the_category.id, by_id):
            errors["parent_id"] = gettext(
                "Choose a parent category in the same language that is not this category "
                "or one of its subcategories."
            )
    try:
        position = int(values["position"] or "0")
        if not -1_000_000 <= position <= 1_000_000:
            raise ValueError
    except ValueError:
        errors["position"] = gettext("Enter a whole number from -1000000 to 1000000.")
        position = 0
    if errors:
        return await _category_page(
            request, the_category, values=values, errors=errors, status_code=400
        )
    try:
        await core.update_category(
            tenant.id,
            the_category.id,
            name=values["name"],
            description=values["description"],
            parent_id=parent_id,
            position=position,
        )
    except Conflict as exc:
        return await _category_page(
            request, the_category, values=values, problem=str(exc), status_code=409
        )
    except NotFound as exc:
        raise _not_found(gettext("There is no such category.")) from exc
    return _redirect(request, "admin_category", "saved=1", id=the_category.id)


@require_agent("admin")
async def category_delete(request: Request) -> Response:
    the_category = await _get_category(request)
    try:
        await request.state.core.delete_category(_tenant(request).id, the_category.id)
    except Conflict as exc:
        return await _category_page(request, the_category, problem=str(exc), status_code=409)
    return _redirect(request, "admin_categories", "deleted=1")


# ------------------------------------------------------------------ articles
@require_agent("admin")
async def articles(request: Request) -> Response:
    tenant = _tenant(request)
    core = request.state.core
    language = request.query_params.get("language", "")
    language = language if language in LANGUAGES else ""
    found = await core.list_articles(tenant.id, language=language or None, published_only=False)
    names = {c.id: c.name for c in await core.list_categories(tenant.id)}
    return admin_page(
        request,
        "admin/articles.html",
        {"articles": found, "category_names": names, "language": language},
    )


ARTICLE_FIELDS = ("title", "slug", "language", "category_id", "body_md")


def _article_values(article: Article) -> dict[str, Any]:
    return {
        "title": article.title,
        "slug": article.slug,
        "language": article.language,
        "category_id": str(article.category_id or ""),
        "body_md": article.body_md,
        "published": article.published,
    }


def _article_form(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {key: _text(form, key) for key in ARTICLE_FIELDS}
    body = form.get("body_md")
    values["body_md"] = body.replace("\r\n", "\n") if isinstance(body, str) else ""
    values["published"] = form.get("published") is not None
    return values


def _article_draft(
    values: dict[str, Any], categories: list[Category]
) -> tuple[ArticleDraft | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if error := _length_error(values["title"], 1, 300):
        errors["title"] = error
    if not values["slug"] and values["title"]:
        values["slug"] = slugify(values["title"])
    if not values["slug"]:
        if "title" not in errors:
            errors["slug"] = gettext("This field is required.")
    elif len(values["slug"]) > 200:
        errors["slug"] = gettext("Use at most %(max)d characters.") % {"max": 200}
    elif not SLUG_RE.fullmatch(values["slug"]):
        errors["slug"] = gettext("Use only letters, digits, hyphens and underscores.")
    if values["language"] not in LANGUAGES:
        errors["language"] = gettext("Choose a language.")
    category_id: int | None = None
    if values["category_id"]:
        category_id = _parse_id(values["category_id"])
        match = [c for c in categories if c.id == category_id]
        if not match or match[0].language != values["language"]:
            errors["category_id"] = gettext("Choose a category in the article's language.")
    if not values["body_md"].strip():
        errors["body_md"] = gettext("This field is required.")
    elif len(values["body_md"]) > MAX_BODY:
        errors["body_md"] = gettext("Use at most %(max)d characters.") % {"max": MAX_BODY}
    if errors:
        return None, errors
    draft = ArticleDraft(
        language=values["language"],
        slug=values["slug"],
        title=values["title"],
        body_md=values["body_md"],
        published=values["published"],
        category_id=category_id,
    )
    return draft, errors


def _slug_taken() -> str:
    return gettext("Another article in this language uses this slug already.")


async def _article_page(
    request: Request,
    *,
    article: Article | None,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    categories = await request.state.core.list_categories(_tenant(request).id)
    public_url = ""
    if article is not None and article.published:
        public_url = request.url_for("kb_article", lang=article.language, slug=article.slug).path
    return admin_page(
        request,
        "admin/article_form.html",
        {
            "article": article,
            "values": values,
            "errors": errors or {},
            "category_groups": _category_choices(categories),
            "public_url": public_url,
            "saved": request.query_params.get("saved") == "1",
        },
        status_code=status_code,
    )


@require_agent("admin")
async def article_new(request: Request) -> Response:
    tenant = _tenant(request)
    core = request.state.core
    if request.method != "POST":
        language = request.query_params.get("language", "")
        if language not in LANGUAGES:
            language = tenant.default_locale if tenant.default_locale in LANGUAGES else "en"
        values = {key: "" for key in ARTICLE_FIELDS} | {"language": language, "published": False}
        return await _article_page(request, article=None, values=values)
    values = _article_form(await request.form())
    draft, errors = _article_draft(values, await core.list_categories(tenant.id))
    if draft is not None:
        try:
            await core.get_article_by_slug(tenant.id, draft.language, draft.slug)
        except NotFound:
            pass
        else:
            # save_article would overwrite the existing article: refuse instead.
            errors["slug"] = _slug_taken()
    if draft is None or errors:
        return await _article_page(
            request, article=None, values=values, errors=errors, status_code=400
        )
    try:
        saved = await core.save_article(tenant.id, draft)
    except NotFound:
        errors = {"category_id": gettext("Choose a category in the article's language.")}
        return await _article_page(
            request, article=None, values=values, errors=errors, status_code=400
        )
    return _redirect(request, "admin_article_edit", "saved=1", id=saved.id)


@require_agent("admin")
async def article_edit(request: Request) -> Response:
    tenant = _tenant(request)
    core = request.state.core
    try:
        article = await core.get_article(tenant.id, _db_id(request, "id"))
    except NotFound as exc:
        raise _not_found(gettext("There is no such article.")) from exc
    if request.method != "POST":
        return await _article_page(request, article=article, values=_article_values(article))
    values = _article_form(await request.form())
    draft, errors = _article_draft(values, await core.list_categories(tenant.id))
    if draft is not None:
        try:
            await core.update_article(tenant.id, article.id, draft)
        except Conflict:
            errors = {"slug": _slug_taken()}
        except NotFound:
            errors = {"category_id": gettext("Choose a category in the article's language.")}
    if draft is None or errors:
        return await _article_page(
            request, article=article, values=values, errors=errors, status_code=400
        )
    return _redirect(request, "admin_article_edit", "saved=1", id=article.id)


routes = [
    Route("/", dashboard, name="admin_home"),
    Route("/login", login, methods=["GET", "POST"], name="admin_login"),
    Route("/logout", logout, methods=["POST"], name="admin_logout"),
    Route(
        "/logout-everywhere",
        logout_everywhere,
        methods=["POST"],
        name="admin_logout_everywhere",
    ),
    Route("/branding", branding, methods=["GET", "POST"], name="admin_branding"),
    Route("/categories", categories, methods=["GET", "POST"], name="admin_categories"),
    Route("/categories/{id:int}", category, methods=["GET", "POST"], name="admin_category"),
    Route(
        "/categories/{id:int}/delete",
        category_delete,
        methods=["POST"],
        name="admin_category_delete",
    ),
    Route("/articles", articles, name="admin_articles"),
    Route("/articles/new", article_new, methods=["GET", "POST"], name="admin_article_new"),
    Route("/articles/{id:int}", article_edit, methods=["GET", "POST"], name="admin_article_edit"),
    *form_builder_routes,
    *chat_routes,
    *widget_key_routes,
    Route("/settings", settings, methods=["GET", "POST"], name="admin_settings"),
    Route("/widget", widget_settings, methods=["GET", "POST"], name="admin_widget"),
]
