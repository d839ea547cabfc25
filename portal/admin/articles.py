"""Knowledge base articles in the admin: the list, a new article, editing one."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.admin.categories import category_choices
from portal.core.contract import Article, ArticleDraft, Category, Conflict, NotFound
from portal.core.slugs import slugify
from portal.i18n import LANGUAGES, gettext
from portal.request_helpers import (
    db_id,
    form_text,
    length_error,
    not_found_error,
    parse_id,
    redirect_to,
    tenant_of,
)
from portal.services import services
from portal.urls import path_for

SLUG_RE = re.compile(r"[\w-]+")
MAX_BODY = 200_000


@require_agent("admin")
async def articles(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    language = request.query_params.get("language", "")
    language = language if language in LANGUAGES else ""
    found = await core.kb.list_articles(tenant.id, language=language or None, published_only=False)
    names = {c.id: c.name for c in await core.kb.list_categories(tenant.id)}
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
    values: dict[str, Any] = {key: form_text(form, key) for key in ARTICLE_FIELDS}
    body = form.get("body_md")
    values["body_md"] = body.replace("\r\n", "\n") if isinstance(body, str) else ""
    values["published"] = form.get("published") is not None
    return values


def _article_draft(
    values: dict[str, Any], categories: list[Category]
) -> tuple[ArticleDraft | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if error := length_error(values["title"], 1, 300):
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
        category_id = parse_id(values["category_id"])
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
    categories = await services(request).core.kb.list_categories(tenant_of(request).id)
    public_url = ""
    if article is not None and article.published:
        public_url = path_for(request, "kb_article", lang=article.language, slug=article.slug)
    return admin_page(
        request,
        "admin/article_form.html",
        {
            "article": article,
            "values": values,
            "errors": errors or {},
            "category_groups": category_choices(categories),
            "public_url": public_url,
            "saved": request.query_params.get("saved") == "1",
        },
        status_code=status_code,
    )


@require_agent("admin")
async def article_new(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    if request.method != "POST":
        language = request.query_params.get("language", "")
        if language not in LANGUAGES:
            language = tenant.default_locale if tenant.default_locale in LANGUAGES else "en"
        values = {key: "" for key in ARTICLE_FIELDS} | {"language": language, "published": False}
        return await _article_page(request, article=None, values=values)
    values = _article_form(await request.form())
    draft, errors = _article_draft(values, await core.kb.list_categories(tenant.id))
    if draft is not None:
        try:
            await core.kb.get_article_by_slug(tenant.id, draft.language, draft.slug)
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
        saved = await core.kb.save_article(tenant.id, draft)
    except NotFound:
        errors = {"category_id": gettext("Choose a category in the article's language.")}
        return await _article_page(
            request, article=None, values=values, errors=errors, status_code=400
        )
    return redirect_to(request, "admin_article_edit", "saved=1", id=saved.id)


@require_agent("admin")
async def article_edit(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    try:
        article = await core.kb.get_article(tenant.id, db_id(request, "id"))
    except NotFound as exc:
        raise not_found_error(gettext("There is no such article.")) from exc
    if request.method != "POST":
        return await _article_page(request, article=article, values=_article_values(article))
    values = _article_form(await request.form())
    draft, errors = _article_draft(values, await core.kb.list_categories(tenant.id))
    if draft is not None:
        try:
            await core.kb.update_article(tenant.id, article.id, draft)
        except Conflict:
            errors = {"slug": _slug_taken()}
        except NotFound:
            errors = {"category_id": gettext("Choose a category in the article's language.")}
    if draft is None or errors:
        return await _article_page(
            request, article=article, values=values, errors=errors, status_code=400
        )
    return redirect_to(request, "admin_article_edit", "saved=1", id=article.id)
