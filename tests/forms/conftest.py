"""Fixtures of the web form tests: a tenant, departments and forms made through the core."""

from __future__ import annotations

import pytest

from portal.core.contract import Choice, Field, FormDraft


@pytest.fixture
async def acme(server):
    return await server.tenant("acme", "Acme")


@pytest.fixture
async def contact_form(server, acme):
    """A form with no custom fields and no departments."""
    return await server.core.forms.save_form(acme.id, FormDraft("Contact us"))


@pytest.fixture
async def typed_form(server, acme):
    """One required custom field of every type."""
    fields = (
        Field("order_ref", "Order reference", "text", required=True, help_text="On the receipt"),
        Field("steps", "Steps to reproduce", "textarea", required=True),
        Field("quantity", "Quantity", "number", required=True),
        Field("since", "Since when", "date", required=True),
        Field(
            "product",
            "Product",
            "choice",
            required=True,
            options=(Choice("a", "Alpha"), Choice("b", "Beta")),
        ),
        Field(
            "os",
            "Systems",
            "multichoice",
            required=True,
            options=(Choice("win", "Windows"), Choice("mac", "macOS"), Choice("linux", "Linux")),
        ),
        Field("agree", "I agree to be contacted", "checkbox", required=True),
        Field("screenshot", "Screenshot", "file", required=True),
    )
    return await server.core.forms.save_form(acme.id, FormDraft("Report a problem", fields=fields))


@pytest.fixture
async def departments(server, acme):
    sales = await server.core.forms.create_department(acme.id, "Sales")
    support = await server.core.forms.create_department(acme.id, "Support")
    return sales, support


@pytest.fixture
async def routed_form(server, acme, departments):
    """The visitor picks a department; some fields and choices belong to one department only."""
    sales, support = departments
    fields = (
        Field("order_no", "Order number", "text", required=True, department_ids=(sales.id,)),
        Field("serial", "Serial number", "text", department_ids=(support.id,)),
        Field(
            "product",
            "Product",
            "choice",
            required=True,
            options=(
                Choice("sw", "Software"),
                Choice("hw", "Hardware", (support.id,)),
                Choice("lic", "Licence", (sales.id,)),
            ),
        ),
    )
    return await server.core.forms.save_form(acme.id, FormDraft("Ask us", fields=fields))
