"""What the form page and the form API read first: the form a request names and its departments.

(The language they answer in is `?lang=`'s, else the browser's: `portal.i18n.language_from_query`.)
"""

from __future__ import annotations

from starlette.requests import Request

from portal.core.contract import Department, Form
from portal.request_helpers import MAX_DB_ID, tenant_of
from portal.services import services


async def requested_form(request: Request) -> Form | None:
    """The form the path names, from this app's short cache; None when there is none."""
    form_id = request.path_params["form_id"]
    if form_id > MAX_DB_ID:
        return None
    app = services(request)
    return await app.form_cache.form(app.core, tenant_of(request).id, form_id)


async def form_departments(request: Request, form: Form) -> list[Department]:
    """The departments a visitor may choose from: none when the form names its own."""
    if form.department_id is not None:
        return []
    app = services(request)
    return await app.form_cache.departments(app.core, tenant_of(request).id)
