"""The admin form builder over real HTTP: departments, creating and editing forms, deflections."""

from __future__ import annotations

import re

import pytest

from portal.core.contract import Choice, Field, FormDraft
from tests.admin.test_admin import ADMIN_EMAIL, ADMIN_PASSWORD, csrf_from, log_in

from .helpers import VALID, api_token, send_form


@pytest.fixture
async def admin(server, acme):
    await server.agent(acme, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    async with server.client() as client:
        assert (await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
        yield client


def error_for(page: str, name: str) -> str:
    match = re.search(rf'<p class="error" id="f-{re.escape(name)}-error">(.*?)</p>', page, re.S)
    assert match, f"no error for {name}"
    return match.group(1)


async def test_departments_and_a_form_with_fields(server, acme, admin):
    page = await admin.get("/admin/departments")
    assert page.status_code == 200
    token = csrf_from(page.text)
    for name in ("Sales", "Support"):
        created = await admin.post("/admin/departments", data={"csrf_token": token, "name": name})
        assert created.status_code == 303
    duplicate = await admin.post("/admin/departments", data={"csrf_token": token, "name": "sales"})
    assert duplicate.status_code == 400
    sales, support = await server.core.forms.list_departments(acme.id)

    new = await admin.get("/admin/forms/new")
    assert new.status_code == 200
    assert 'aria-current="page">Forms</a>' in new.text
    data = {
        "csrf_token": csrf_from(new.text),
        "title": "Ask us",
        "department_id": "",
        "kind": "ticket",
        "rows": "3",
        "field-0-key": "product",
        "field-0-label": "Product",
        "field-0-type": "choice",
        "field-0-required": "1",
        "field-0-help": "Which product is it about?",
        "field-0-choices": f"sw|Software\r\nhw|Hardware|Support\r\nlic|Licence|sales, {sales.id}",
        "field-1-key": "order_no",
        "field-1-label": "Order number",
        "field-1-type": "text",
        "field-1-departments": str(sales.id),
        "field-2-key": "",
        "field-2-label": "",
        "field-2-type": "text",
    }
    created = await admin.post("/admin/forms/new", data=data)
    assert created.status_code == 303, created.text
    [form] = await server.core.forms.list_forms(acme.id)
    assert created.headers["location"] == f"/admin/forms/{form.id}?saved=1"
    assert form.title == "Ask us" and form.department_id is None and form.kind == "ticket"
    assert form.fields == (
        Field(
            "product",
            "Product",
            "choice",
            required=True,
            help_text="Which product is it about?",
            options=(
                Choice("sw", "Software"),
                Choice("hw", "Hardware", (support.id,)),
                Choice("lic", "Licence", (sales.id,)),
            ),
        ),
        Field("order_no", "Order number", "text", department_ids=(sales.id,)),
    )

    # The edit page shows the fields as rows again, with links to use the form.
    edit = await admin.get(created.headers["location"])
    assert "The form is saved." in edit.text
    assert "hw|Hardware|Support" in edit.text and "lic|Licence|Sales" in edit.text
    assert f"/forms/{form.id}?embed=1" in edit.text
    assert "&lt;iframe" in edit.text

    # Edit: fix the department, make it a task, remove a field, add a checkbox.
    data = {
        "csrf_token": csrf_from(edit.text),
        "title": "Ask sales",
        "department_id": str(sales.id),
        "kind": "task",
        "rows": "4",
        "field-0-key": "product",
        "field-0-label": "Product",
        "field-0-type": "multichoice",
        "field-0-choices": "sw|Software\nlic|Licence",
        "field-1-key": "order_no",
        "field-1-label": "Order number",
        "field-1-type": "text",
        "field-1-remove": "1",
        "field-2-key": "callback",
        "field-2-label": "Call me back",
        "field-2-type": "checkbox",
        "field-3-key": "",
    }
    saved = await admin.post(f"/admin/forms/{form.id}", data=data)
    assert saved.status_code == 303, saved.text
    form = await server.core.forms.get_form(acme.id, form.id)
    assert (form.title, form.department_id, form.kind) == ("Ask sales", sales.id, "task")
    assert [(f.key, f.type) for f in form.fields] == [
        ("product", "multichoice"),
        ("callback", "checkbox"),
    ]

    # The public form follows at once.
    async with server.client() as visitor:
        page = await visitor.get(f"/forms/{form.id}")
        assert "<h1>Ask sales</h1>" in page.text and "Call me back" in page.text
        assert "Order number" not in page.text


async def test_builder_reports_errors_per_row_and_keeps_input(server, acme, admin):
    page = await admin.get("/admin/forms/new")
    data = {
        "csrf_token": csrf_from(page.text),
        "title": "",
        "department_id": "12345",
        "kind": "ticket",
        "rows": "4",
        "field-0-key": "Bad Key",
        "field-0-label": "Bad",
        "field-0-type": "text",
        "field-1-key": "email",
        "field-1-label": "Email again",
        "field-1-type": "text",
        "field-2-key": "pick",
        "field-2-label": "Pick",
        "field-2-type": "choice",
        "field-2-choices": "a|A|Nowhere",
        "field-3-key": "none",
        "field-3-label": "No choices",
        "field-3-type": "multichoice",
    }
    response = await admin.post("/admin/forms/new", data=data)
    assert response.status_code == 400
    assert error_for(response.text, "title") == "This field is required."
    assert error_for(response.text, "department_id") == "Choose one of the listed options."
    assert "Start with a small letter" in error_for(response.text, "field-0-key")
    assert "already" in error_for(response.text, "field-1-key")
    assert "no department “Nowhere”" in error_for(response.text, "field-2-choices")
    assert error_for(response.text, "field-3-choices") == "Add at least one choice."
    assert 'value="Bad Key"' in response.text and "a|A|Nowhere" in response.text
    assert await server.core.forms.list_forms(acme.id) == []
    # Without the CSRF token nothing is saved.
    forged = await admin.post("/admin/forms/new", data={**data, "csrf_token": "forged"})
    assert forged.status_code == 403


async def test_forms_list_shows_the_deflection_summary_and_delete(server, acme, admin):
    form = await server.core.forms.save_form(acme.id, FormDraft("Contact us"))
    await server.article(acme, "Reset your password", "Click the link.")
    [article] = await server.core.kb.list_articles(acme.id)
    async with server.client() as visitor:
        token = (await api_token(visitor, form.id))["form_token"]
        opened = await visitor.post(
            f"/api/forms/{form.id}/deflections",
            json={"form_token": token, "article_id": article.id, "query": "password"},
        )
        assert opened.status_code == 204
        assert (await send_form(visitor, form.id, VALID)).status_code == 303
    listing = await admin.get("/admin/forms")
    assert listing.status_code == 200
    assert "Contact us" in listing.text
    row = re.search(r'<table class="admin deflections">.*?</table>', listing.text, re.S)
    assert row and "Reset your password" in row.group(0)
    cells = re.findall(r"<td>(\d+)</td>", row.group(0))
    assert cells == ["1", "1"]

    deleted = await admin.post(
        f"/admin/forms/{form.id}/delete", data={"csrf_token": csrf_from(listing.text)}
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/admin/forms?deleted=1"
    assert await server.core.forms.list_forms(acme.id) == []
    async with server.client() as visitor:
        assert (await visitor.get(f"/forms/{form.id}")).status_code == 404


async def test_form_builder_needs_an_admin(server, acme):
    await server.agent(acme, "agent@acme.test", "agent password", role="agent")
    async with server.client() as client:
        assert (await client.get("/admin/forms")).status_code == 303
        assert (await log_in(client, "agent@acme.test", "agent password")).status_code == 303
        assert (await client.get("/admin/forms")).status_code == 403
        assert (await client.get("/admin/departments")).status_code == 403
