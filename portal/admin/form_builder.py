"""The admin form builder's pages: the forms list, a form's editor, delete, departments.

The forms list also shows how often articles suggested on the forms were opened, and how often
no ticket followed (the core's `deflection_summary`). How the editor's rows become a form is in
`form_drafts.py`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from portal.admin.auth import admin_page, require_agent
from portal.admin.form_drafts import form_values, parse_form
from portal.core.contract import Capabilities, Conflict, Department, Form, NotFound
from portal.i18n import gettext
from portal.request_helpers import db_id, form_text, not_found_error, redirect_to, tenant_of
from portal.services import services
from portal.urls import absolute, path_for


def type_labels(capabilities: Capabilities) -> dict[str, str]:
    """The field types an admin may pick: files only where the backend keeps attachments."""
    labels = {
        "text": gettext("Text (one line)"),
        "textarea": gettext("Text (several lines)"),
        "number": gettext("Number"),
        "date": gettext("Date"),
        "choice": gettext("Single choice"),
        "multichoice": gettext("Multiple choice"),
        "checkbox": gettext("Checkbox"),
        "file": gettext("File"),
    }
    if not capabilities.attachments:
        del labels["file"]
    return labels


@require_agent("admin")
async def forms_list(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    departments = {d.id: d.name for d in await core.forms.list_departments(tenant.id)}
    query = request.query_params
    return admin_page(
        request,
        "admin/forms.html",
        {
            "forms": await core.forms.list_forms(tenant.id),
            "department_names": departments,
            "deflections": await core.forms.deflection_summary(tenant.id),
            "deleted": query.get("deleted") == "1",
        },
    )


async def _edit_page(
    request: Request,
    form: Form | None,
    departments: list[Department],
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    problem: str = "",
    status_code: int = 200,
) -> Response:
    links: dict[str, str] = {}
    if form is not None:
        page = path_for(request, "forms_page", form_id=form.id)
        links = {
            "page": absolute(request, page),
            "embed": absolute(request, page + "?embed=1"),
            "api": absolute(request, path_for(request, "forms_api_form", form_id=form.id)),
        }
    return admin_page(
        request,
        "admin/forms_edit.html",
        {
            "form": form,
            "departments": departments,
            "values": values,
            "errors": errors or {},
            "problem": problem,
            "types": type_labels(services(request).core.capabilities),
            "links": links,
            "saved": request.query_params.get("saved") == "1",
        },
        status_code=status_code,
    )


async def _save(request: Request, form: Form | None) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    departments = await core.forms.list_departments(tenant.id)
    if request.method != "POST":
        return await _edit_page(request, form, departments, form_values(form, departments))
    draft, errors, values = parse_form(await request.form(), departments)
    if draft is None:
        return await _edit_page(request, form, departments, values, errors=errors, status_code=400)
    try:
        saved = await core.forms.save_form(tenant.id, draft, form.id if form else None)
    except (Conflict, NotFound):
        services(request).form_cache.forget(tenant.id)
        problem = gettext("The form could not be saved. Reload the page and try again.")
        return await _edit_page(
            request, form, departments, values, problem=problem, status_code=409
        )
    services(request).form_cache.forget(tenant.id)
    return redirect_to(request, "admin_form_edit", "saved=1", id=saved.id)


async def _get_form(request: Request) -> Form:
    message = gettext("There is no such form.")
    form_id = db_id(request, "id", message)
    try:
        return await services(request).core.forms.get_form(tenant_of(request).id, form_id)
    except NotFound as exc:
        raise not_found_error(message) from exc


@require_agent("admin")
async def form_new(request: Request) -> Response:
    return await _save(request, None)


@require_agent("admin")
async def form_edit(request: Request) -> Response:
    return await _save(request, await _get_form(request))


@require_agent("admin")
async def form_delete(request: Request) -> Response:
    form = await _get_form(request)
    await services(request).core.forms.delete_form(tenant_of(request).id, form.id)
    services(request).form_cache.forget(tenant_of(request).id)
    return redirect_to(request, "admin_forms", "deleted=1")


@require_agent("admin")
async def departments(request: Request) -> Response:
    tenant = tenant_of(request)
    core = services(request).core
    errors: dict[str, str] = {}
    name = ""
    if request.method == "POST":
        name = form_text(await request.form(), "name")
        existing = await core.forms.list_departments(tenant.id)
        if not name:
            errors["name"] = gettext("This field is required.")
        elif len(name) > 200:
            errors["name"] = gettext("Use at most %(max)d characters.") % {"max": 200}
        elif any(d.name.casefold() == name.casefold() for d in existing):
            errors["name"] = gettext("There is a department with this name already.")
        if not errors:
            await core.forms.create_department(tenant.id, name)
            services(request).form_cache.forget(tenant.id)
            return redirect_to(request, "admin_departments", "created=1")
    return admin_page(
        request,
        "admin/departments.html",
        {
            "departments": await core.forms.list_departments(tenant.id),
            "values": {"name": name},
            "errors": errors,
            "created": request.query_params.get("created") == "1",
        },
        status_code=400 if errors else 200,
    )
