"""`portal demo`: a newcomer can try every app, and running it again makes nothing twice."""

from __future__ import annotations

import pytest

from portal.demo.loader import CONTACT_DONE, DEMO_SITE, DEMO_SLUG, add_contact_form, load_demo


async def _contents(core, tenant_id: int) -> tuple[list, list, list]:
    return (
        await core.forms.list_departments(tenant_id),
        await core.forms.list_forms(tenant_id),
        await core.kb.list_articles(tenant_id, published_only=False),
    )


async def test_demo_has_a_contact_form_with_departments_and_their_own_fields(core, settings):
    await load_demo(core, settings)
    tenant = await core.tenants.get_tenant(DEMO_SLUG)
    departments = {d.name: d.id for d in await core.forms.list_departments(tenant.id)}
    assert set(departments) == {"Billing", "Technical support"}
    [form] = await core.forms.list_forms(tenant.id)
    assert form.title == "Contact us"
    assert form.department_id is None  # the visitor picks the department
    shown = {
        name: [f.key for f in form.fields if f.shown_for(department_id)]
        for name, department_id in departments.items()
    }
    assert shown == {"Billing": ["invoice_number"], "Technical support": ["product", "version"]}
    product = next(f for f in form.fields if f.key == "product")
    assert product.type == "choice" and len(product.options) >= 2
    assert tenant.settings["embed_origins"] == [DEMO_SITE] == ["http://127.0.0.2:8001"]


@pytest.mark.both_databases
async def test_running_the_demo_twice_creates_nothing_twice(core, settings):
    await load_demo(core, settings)
    tenant = await core.tenants.get_tenant(DEMO_SLUG)
    before = await _contents(core, tenant.id)
    await load_demo(core, settings)
    assert await _contents(core, tenant.id) == before
    assert len(await core.tenants.list_tenants()) == 1


async def test_an_older_demo_gets_the_form_once_and_keeps_its_sites(core, settings):
    # A demo made before there was a contact form, whose admin chose other sites.
    tenant = await core.tenants.create_tenant(DEMO_SLUG, "Demo Co")
    await core.tenants.update_tenant_settings(
        tenant.id, {"embed_origins": ["https://www.demo.example"]}
    )
    await load_demo(core, settings)
    tenant = await core.tenants.get_tenant(DEMO_SLUG)
    [form] = await core.forms.list_forms(tenant.id)
    assert tenant.settings[CONTACT_DONE] == form.id
    assert tenant.settings["embed_origins"] == ["https://www.demo.example"]
    # Deleted by the admin: the next `make serve` does not bring it back.
    await core.forms.delete_form(tenant.id, form.id)
    await load_demo(core, settings)
    assert await core.forms.list_forms(tenant.id) == []
    assert await add_contact_form(core, await core.tenants.get_tenant(DEMO_SLUG)) is None
