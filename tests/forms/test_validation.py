"""Server-side validation over real HTTP: every field type, departments, attachments."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.core.contract import FormDraft

from .helpers import PNG, VALID, api_send, api_token, field_error, field_errors, send_form

GOOD_TYPED = {
    "order_ref": "A-1",
    "steps": "1. Turn it on\r\n2. Smoke",
    "quantity": "3.50",
    "since": "2024-02-29",
    "product": "b",
    "os": ["mac", "linux"],
    "agree": "yes",
}


async def only_ticket(server, tenant):
    page = await server.core.tickets.list_tickets(tenant.id, limit=10)
    assert page.total == 1
    return page.tickets[0]


async def test_every_required_custom_field_says_what_is_missing(server, acme, typed_form):
    async with server.client() as client:
        response = await send_form(client, typed_form.id)
        assert response.status_code == 400
        errors = field_errors(response.text)
        required = "This field is required."
        assert errors == {
            "order_ref": required,
            "steps": required,
            "quantity": required,
            "since": required,
            "product": required,
            "os": required,
            "agree": "Check this box to continue.",
            "screenshot": "Attach a file.",
        }
        assert "On the receipt" in response.text  # help text
        assert 'value="Kari Nordmann"' in response.text  # the standard fields are kept
        assert "It started this morning." in response.text
    assert (await server.core.tickets.list_tickets(acme.id)).total == 0


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("order_ref", "x" * 1001, "Use at most 1000 characters."),
        ("steps", "y" * 10001, "Use at most 10000 characters."),
        ("quantity", "three", "Enter a number, like 42 or 3.5."),
        ("quantity", "1e5", "Enter a number, like 42 or 3.5."),
        ("since", "2023-02-29", "Enter a date as YYYY-MM-DD, like 2024-05-31."),
        ("since", "31.05.2024", "Enter a date as YYYY-MM-DD, like 2024-05-31."),
        ("product", "c", "Choose one of the listed options."),
        ("os", ["mac", "amiga"], "Choose one of the listed options."),
        ("agree", "", "Check this box to continue."),
    ],
)
async def test_each_field_type_refuses_bad_values(server, acme, typed_form, key, value, message):
    async with server.client() as client:
        values = {**VALID, **GOOD_TYPED, key: value}
        files = [("screenshot", ("shot.png", PNG, "image/png"))]
        response = await send_form(client, typed_form.id, values, files=files)
        assert response.status_code == 400
        assert field_errors(response.text) == {key: message}
        if isinstance(value, str) and key not in ("agree", "steps", "product"):
            assert f'value="{value}"' in response.text  # what was typed is shown again
        if key == "os":
            assert 'value="mac" checked' in response.text
        assert "shot.png" not in response.text  # files are not kept


async def test_valid_values_are_cleaned_and_stored_with_the_ticket(server, acme, typed_form):
    async with server.client() as client:
        files = [("screenshot", ("shot.png", PNG, "image/png"))]
        response = await send_form(client, typed_form.id, {**VALID, **GOOD_TYPED}, files=files)
        assert response.status_code == 303, field_errors(response.text)
    ticket = await only_ticket(server, acme)
    assert ticket.custom_fields == {
        "order_ref": "A-1",
        "steps": "1. Turn it on\n2. Smoke",
        "quantity": 3.5,
        "since": "2024-02-29",
        "product": "b",
        "os": ["mac", "linux"],
        "agree": True,
        "screenshot": ["shot.png"],
    }
    [reply] = await server.core.tickets.list_replies(acme.id, ticket.id)
    [attachment] = reply.attachments
    assert (attachment.filename, attachment.content_type) == ("shot.png", "image/png")


@pytest.mark.parametrize(
    "changes, key, message",
    [
        ({"email": ""}, "email", "This field is required."),
        ({"email": "kari@"}, "email", "Enter a valid email address, like name@example.com."),
        (
            {"email": "kari@exa mple.com"},
            "email",
            "Enter a valid email address, like name@example.com.",
        ),
        (
            {"email": "a..b@example.com"},
            "email",
            "Enter a valid email address, like name@example.com.",
        ),
        ({"subject": "   "}, "subject", "This field is required."),
        ({"subject": "s" * 301}, "subject", "Use at most 300 characters."),
        ({"description": ""}, "description", "This field is required."),
        ({"priority": "yesterday"}, "priority", "Choose one of the listed options."),
        ({"name": "n" * 201}, "name", "Use at most 200 characters."),
    ],
)
async def test_standard_fields(server, acme, contact_form, changes, key, message):
    async with server.client() as client:
        response = await send_form(client, contact_form.id, {**VALID, **changes})
        assert response.status_code == 400
        assert field_errors(response.text) == {key: message}


async def test_standard_fields_optional_parts(server, acme, contact_form):
    async with server.client() as client:
        values = {**VALID, "name": "", "priority": "", "email": "Kari@BÜCHER.example"}
        response = await send_form(client, contact_form.id, values)
        assert response.status_code == 303
    ticket = await only_ticket(server, acme)
    assert ticket.priority == "normal"
    assert ticket.requester_email == "kari@xn--bcher-kva.example"


# ------------------------------------------------------------------ departments
async def test_department_specific_fields_and_choices(server, acme, departments, routed_form):
    sales, support = departments
    async with server.client() as client:
        page = await client.get(f"/forms/{routed_form.id}")
        assert '<select id="f-department_id" name="department_id" required' in page.text
        # Fields of a department are drawn hidden until it is chosen (form.js shows them).
        assert f'data-departments="{sales.id}" hidden' in page.text
        chosen = await client.get(f"/forms/{routed_form.id}", params={"department": sales.id})
        assert f'data-departments="{sales.id}" hidden' not in chosen.text

        no_department = await send_form(client, routed_form.id, {**VALID, "product": "sw"})
        assert field_errors(no_department.text) == {"department_id": "Choose a department."}
        bogus = await send_form(
            client, routed_form.id, {**VALID, "product": "sw", "department_id": "999"}
        )
        assert field_errors(bogus.text) == {"department_id": "Choose one of the listed options."}

        # Sales: its own required field, and the support-only choice is refused.
        sales_bad = await send_form(
            client, routed_form.id, {**VALID, "department_id": sales.id, "product": "hw"}
        )
        assert sales_bad.status_code == 400
        assert field_errors(sales_bad.text) == {
            "order_no": "This field is required.",
            "product": "Choose one of the listed options.",
        }
        assert f'<option value="{sales.id}" selected>' in sales_bad.text
        # Support: the sales field is not asked for, and a value sent for it is ignored.
        support_ok = await send_form(
            client,
            routed_form.id,
            {
                **VALID,
                "department_id": support.id,
                "product": "hw",
                "order_no": "S-1",
                "serial": "XYZ",
            },
        )
        assert support_ok.status_code == 303, field_errors(support_ok.text)
    ticket = await only_ticket(server, acme)
    assert ticket.department_id == support.id
    assert ticket.custom_fields == {"serial": "XYZ", "product": "hw"}


async def test_a_form_with_a_fixed_department_sends_tickets_there(server, acme, departments):
    sales, support = departments
    form = await server.core.forms.save_form(
        acme.id, FormDraft("Sales question", department_id=sales.id, kind="task")
    )
    async with server.client() as client:
        page = await client.get(f"/forms/{form.id}")
        assert 'name="department_id"' not in page.text
        response = await send_form(client, form.id, {**VALID, "department_id": support.id})
        assert response.status_code == 303
    ticket = await only_ticket(server, acme)
    assert (ticket.department_id, ticket.kind) == (sales.id, "task")


async def test_the_api_definition_lists_fields_per_department(
    server, acme, departments, routed_form
):
    sales, support = departments
    async with server.client() as client:
        definition = await api_token(client, routed_form.id)
    assert definition["department_id"] is None
    assert [f["key"] for f in definition["fields"]] == ["product"]
    assert [c["value"] for c in definition["fields"][0]["choices"]] == ["sw"]
    by_id = {d["id"]: d for d in definition["departments"]}
    assert [f["key"] for f in by_id[sales.id]["fields"]] == ["order_no", "product"]
    assert [c["value"] for c in by_id[sales.id]["fields"][1]["choices"]] == ["sw", "lic"]
    assert [f["key"] for f in by_id[support.id]["fields"]] == ["serial", "product"]
    assert [c["value"] for c in by_id[support.id]["fields"][1]["choices"]] == ["sw", "hw"]
    department = next(f for f in definition["standard_fields"] if f["key"] == "department_id")
    assert [c["label"] for c in department["choices"]] == ["Sales", "Support"]


# ------------------------------------------------------------------ attachments
@pytest.fixture
async def small_limits(server, acme):
    await server.core.tenants.update_tenant_settings(
        acme.id, {"attachment_max_bytes": 1024, "attachment_max_count": 2}
    )


async def test_attachment_too_big(server, acme, contact_form, small_limits):
    async with server.client() as client:
        files = [("attachments", ("big.txt", b"a" * 1025, "text/plain"))]
        response = await send_form(client, contact_form.id, files=files)
        assert response.status_code == 400
        assert field_error(response.text, "attachments") == "big.txt is larger than 1 KB."
        exact = [("attachments", ("fits.txt", b"a" * 1024, "text/plain"))]
        assert (await send_form(client, contact_form.id, files=exact)).status_code == 303


async def test_attachment_type_is_checked_by_content(server, acme, contact_form, small_limits):
    async with server.client() as client:
        exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 100
        files = [("attachments", ("harmless.png", exe, "image/png"))]
        response = await send_form(client, contact_form.id, files=files)
        assert response.status_code == 400
        assert field_error(response.text, "attachments") == (
            "harmless.png is not a file type we accept (images, PDF, plain text or ZIP)."
        )
        # A real PNG with a misleading name is fine, and stored as what it is.
        files = [("attachments", ("notes.txt", PNG, "text/plain"))]
        assert (await send_form(client, contact_form.id, files=files)).status_code == 303
    ticket = await only_ticket(server, acme)
    [reply] = await server.core.tickets.list_replies(acme.id, ticket.id)
    assert reply.attachments[0].content_type == "image/png"


async def test_too_many_attachments(server, acme, contact_form, small_limits):
    async with server.client() as client:
        files = [("attachments", (f"{i}.txt", b"note %d" % i, "text/plain")) for i in range(3)]
        response = await send_form(client, contact_form.id, files=files)
        assert response.status_code == 400
        assert field_error(response.text, "attachments") == "Attach at most 2 files."
    assert (await server.core.tickets.list_tickets(acme.id)).total == 0


async def test_path_traversal_names_become_safe(server, settings, acme, contact_form):
    async with server.client() as client:
        files = [
            ("attachments", ("../../../../etc/passwd.txt", b"root:x:0:0", "text/plain")),
            ("attachments", ("..\\..\\boot.ini", b"[boot loader]", "text/plain")),
        ]
        response = await send_form(client, contact_form.id, files=files)
        assert response.status_code == 303
    ticket = await only_ticket(server, acme)
    [reply] = await server.core.tickets.list_replies(acme.id, ticket.id)
    assert sorted(a.filename for a in reply.attachments) == ["boot.ini", "passwd.txt"]
    root = Path(settings.data_dir) / "attachments"
    stored = sorted(p.relative_to(root).parts for p in root.rglob("*") if p.is_file())
    assert [parts[0] for parts in stored] == [str(acme.id), str(acme.id)]
    assert all(len(parts) == 2 and len(parts[1]) == 64 for parts in stored)


async def test_api_accepts_multipart_with_files(server, acme, typed_form):
    async with server.client() as client:
        definition = await api_token(client, typed_form.id)
        data = {
            **VALID,
            **GOOD_TYPED,
            "form_token": definition["form_token"],
            "idempotency_key": "multipart-key-1",
        }
        files = [
            ("screenshot", ("shot.png", PNG, "image/png")),
            ("attachments", ("log.txt", b"log line", "text/plain")),
        ]
        response = await client.post(
            f"/api/forms/{typed_form.id}/submissions", data=data, files=files
        )
        assert response.status_code == 201, response.text
        bad = await api_send(
            client,
            typed_form.id,
            {**VALID, **GOOD_TYPED, "quantity": "x", "form_token": definition["form_token"]},
        )
        assert bad.status_code == 422
        assert bad.json()["errors"]["quantity"] == "Enter a number, like 42 or 3.5."
        assert bad.json()["errors"]["screenshot"] == "Attach a file."
        assert "idempotency_key" in bad.json()["errors"]
    ticket = await only_ticket(server, acme)
    [reply] = await server.core.tickets.list_replies(acme.id, ticket.id)
    assert sorted(a.filename for a in reply.attachments) == ["log.txt", "shot.png"]


# ------------------------------------------------------------------ addresses, names, file names
async def test_an_address_that_adds_headers_is_refused(server, acme, contact_form):
    attack = "x?cc=attacker%40evil.example&subject=hi@example.com"
    async with server.client() as client:
        response = await send_form(client, contact_form.id, {**VALID, "email": attack})
        assert response.status_code == 400
        assert field_errors(response.text) == {
            "email": "Enter a valid email address, like name@example.com."
        }
    assert (await server.core.tickets.list_tickets(acme.id)).total == 0


async def test_requester_names_and_file_names_lose_bidi_characters(server, acme, typed_form):
    async with server.client() as client:
        files = [
            ("screenshot", ("page.html", b"<script>alert(1)</script>", "text/html")),
            ("attachments", ("invoice\u202efdp.bat", b"del *", "text/plain")),
        ]
        values = {**VALID, **GOOD_TYPED, "name": "Kari \u202eNordmann"}
        response = await send_form(client, typed_form.id, values, files=files)
        assert response.status_code == 303, field_errors(response.text)
    ticket = await only_ticket(server, acme)
    assert ticket.requester_name == "Kari Nordmann"
    assert ticket.custom_fields["screenshot"] == ["page.html.txt"]  # as the file is stored
    [reply] = await server.core.tickets.list_replies(acme.id, ticket.id)
    assert sorted(a.filename for a in reply.attachments) == ["invoicefdp.bat.txt", "page.html.txt"]


async def test_a_tenant_that_refuses_names_that_could_run(server, acme, contact_form):
    await server.core.tenants.update_tenant_settings(
        acme.id, {"attachment_dangerous_names": "refuse"}
    )
    async with server.client() as client:
        files = [("attachments", ("x.svg", b"<svg onload='alert(1)'/>", "image/svg+xml"))]
        response = await send_form(client, contact_form.id, files=files)
        assert response.status_code == 400
        assert field_error(response.text, "attachments") == (
            "x.svg is not accepted: files of this kind can run programs when opened."
        )
    assert (await server.core.tickets.list_tickets(acme.id)).total == 0
