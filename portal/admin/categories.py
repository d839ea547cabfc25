"""Knowledge base categories: the list with a new-category form, one category, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.core.contract import Category, Conflict, NotFound
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


def category_choices(categories: list[Category]) -> list[tuple[str, list[tuple[Category, str]]]]:
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


async def _categories_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    categories = await core.kb.list_categories(tenant.id)
    counts: dict[int, int] = {}
    for article in await core.kb.list_articles(tenant.id, published_only=False):
        if article.category_id is not None:
            counts[article.category_id] = counts.get(article.category_id, 0) + 1
    default_language = tenant.default_locale if tenant.default_locale in LANGUAGES else "en"
    query = request.query_params
    return admin_page(
        request,
        "admin/categories.html",
        {
            "groups": category_choices(categories),
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
    tenant = tenant_of(request)
    core = services(request).core
    form = await request.form()
    values = {key: form_text(form, key) for key in ("language", "name", "parent_id")}
    errors: dict[str, str] = {}
    language = values["language"]
    if language not in LANGUAGES:
        errors["language"] = gettext("Choose a language.")
    if error := length_error(values["name"], 1, 200):
        errors["name"] = error
    parent_id: int | None = None
    if values["parent_id"]:
        parent_id = parse_id(values["parent_id"])
        parent = None
        if parent_id is not None:
            try:
                parent = await core.kb.get_category(tenant.id, parent_id)
            except NotFound:
                parent = None
        if parent is None or parent.language != language:
            errors["parent_id"] = gettext("Choose a parent category in the same language.")
    if not errors:
        try:
            await core.kb.get_category_by_slug(tenant.id, language, slugify(values["name"]))
        except NotFound:
            pass
        else:
            errors["name"] = gettext("This language has a category with this name already.")
    if errors:
        return await _categories_page(request, values=values, errors=errors, status_code=400)
    await core.kb.ensure_category(tenant.id, language, values["name"], parent_id=parent_id)
    return redirect_to(request, "admin_categories", "created=1")


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
    tenant = tenant_of(request)
    siblings = await services(request).core.kb.list_categories(tenant.id, category.language)
    by_id = {c.id: c for c in siblings}
    parents = [
        (c, label)
        for _, group in category_choices(siblings)
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
        return await services(request).core.kb.get_category(
            tenant_of(request).id, db_id(request, "id")
        )
    except NotFound as exc:
        raise not_found_error(gettext("There is no such category.")) from exc


@require_agent("admin")
async def category(request: Request) -> Response:
    the_category = await _get_category(request)
    if request.method != "POST":
        return await _category_page(request, the_category)
    tenant = tenant_of(request)
    core = services(request).core
    form = await request.form()
    values = {key: form_text(form, key) for key in ("name", "description", "parent_id", "position")}
    errors: dict[str, str] = {}
    if error := length_error(values["name"], 1, 200):
        errors["name"] = error
    if error := length_error(values["description"], 0, 2000):
        errors["description"] = error
    parent_id: int | None = None
    if values["parent_id"]:
        siblings = await core.kb.list_categories(tenant.id, the_category.language)
        by_id = {c.id: c for c in siblings}
        parent_id = parse_id(values["parent_id"])
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
        await core.kb.update_category(
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
        raise not_found_error(gettext("There is no such category.")) from exc
    return redirect_to(request, "admin_category", "saved=1", id=the_category.id)


@require_agent("admin")
async def category_delete(request: Request) -> Response:
    the_category = await _get_category(request)
    try:
        await services(request).core.kb.delete_category(tenant_of(request).id, the_category.id)
    except Conflict as exc:
        return await _category_page(request, the_category, problem=str(exc), status_code=409)
    return redirect_to(request, "admin_categories", "deleted=1")
