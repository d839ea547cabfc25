"""/admin/apps: every app's address, switch and iframe code; a switched-off app is gone."""

from __future__ import annotations

import html

import pytest

from portal.core.contract import FormDraft
from tests.admin.test_admin import ADMIN_EMAIL, ADMIN_PASSWORD, form_token, log_in


@pytest.fixture
async def acme(server):
    tenant = await server.tenant("acme", "Acme")
    await server.agent(tenant, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    await server.article(tenant, "Reset your password", "Open the settings.")
    return tenant


@pytest.fixture
async def admin(server, acme):
    async with server.client() as client:
        assert (await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
        yield client


async def switch(admin, app: str, on: bool) -> None:
    token = await form_token(admin, "/admin/apps")
    response = await admin.post(
        "/admin/apps", data={"csrf_token": token, "app": app, "on": "1" if on else "0"}
    )
    assert response.status_code == 303, response.text


async def widget_apps(server) -> list[str]:
    async with server.client() as client:
        return (await client.get("/widget/config.json")).json()["apps"]


async def test_the_page_lists_every_app_with_its_address_and_iframe_code(server, acme, admin):
    form = await server.core.forms.save_form(acme.id, FormDraft('Support "urgent" <b>'))
    page = (await admin.get("/admin/apps")).text
    shown = html.unescape(page)  # the code as the admin sees and copies it
    for path in ("/kb/en/", f"/forms/{form.id}", "/messenger", "/portal"):
        assert f'<a href="http://acme.portal.test{path}">' in page
        assert f'src="http://acme.portal.test{path}?embed=1"' in shown
    # The form's title is escaped twice: as an attribute of the code, and as the page's text.
    assert 'title="Support &quot;urgent&quot; &lt;b&gt;"' in shown
    assert "<b>" not in page.split("<main", 1)[1]
    assert '<script async src="http://acme.portal.test/widget.js">' in shown


async def test_the_page_and_its_switches_are_for_admins_only(server, acme):
    async with server.client() as client:
        assert (await client.get("/admin/apps")).status_code == 303  # to the sign-in page
        refused = await client.post("/admin/apps", data={"app": "kb", "on": "0"})
        assert refused.status_code in (303, 403)
    assert "kb" in await widget_apps(server)


async def test_a_switched_off_knowledge_base_is_gone_and_comes_back(server, acme, admin):
    async with server.client() as visitor:
        assert (await visitor.get("/kb/en/")).status_code == 200
        await switch(admin, "kb", on=False)
        await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
        for path in ("/kb/en/", "/kb/en/articles/reset-your-password", "/kb/search.json?q=reset"):
            assert (await visitor.get(path)).status_code == 404, path
        assert "kb" not in await widget_apps(server)
        home = await visitor.get("/")
        assert home.headers["location"] == "/portal"
        portal_page = (await visitor.get("/portal/sign-in")).text
        assert "Help center" not in portal_page.split("<main", 1)[0]  # gone from the menu

        await switch(admin, "kb", on=True)
        await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
        assert (await visitor.get("/kb/en/articles/reset-your-password")).status_code == 200
        assert "kb" in await widget_apps(server)


async def test_a_switched_off_form_is_gone_and_the_widget_contacts_through_another(server, acme):
    # Made before any page is seen: the list of forms is kept for a few seconds.
    first = await server.core.forms.save_form(acme.id, FormDraft("Sales"))
    second = await server.core.forms.save_form(acme.id, FormDraft("Support"))
    async with server.client() as admin:
        assert (await log_in(admin, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
        await switch(admin, f"form:{first.id}", on=False)
    await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
    async with server.client() as visitor:
        assert (await visitor.get(f"/forms/{first.id}")).status_code == 404
        assert (await visitor.get(f"/api/forms/{first.id}")).status_code == 404
        assert (await visitor.get(f"/forms/{second.id}")).status_code == 200
        assert (await visitor.get("/widget/config.json")).json()["form"] == second.id


@pytest.mark.parametrize(
    "app, paths", [("chat", ["/messenger"]), ("tickets", ["/portal/tickets", "/portal/sign-in"])]
)
async def test_switched_off_chat_and_portal_answer_404(server, acme, admin, app, paths):
    await switch(admin, app, on=False)
    await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
    async with server.client() as visitor:
        for path in paths:
            assert (await visitor.get(path)).status_code == 404, path
    assert app not in await widget_apps(server)


async def test_an_unknown_app_is_refused_and_nothing_changes(server, acme, admin):
    token = await form_token(admin, "/admin/apps")
    for app in ("wiki", "form:999999", "form:x"):
        response = await admin.post(
            "/admin/apps", data={"csrf_token": token, "app": app, "on": "0"}
        )
        assert response.status_code == 400
        assert "no such app" in response.text
    assert (await server.core.tenants.get_tenant("acme")).settings.get("apps_off") is None


async def test_the_sites_that_may_show_the_apps_are_saved_and_bad_ones_refused(server, acme, admin):
    token = await form_token(admin, "/admin/apps")
    bad = await admin.post(
        "/admin/apps",
        data={"csrf_token": token, "form": "sites", "origins": "https://ok.example\njavascript:x"},
    )
    assert bad.status_code == 400
    assert "Write each site as https://example.com" in bad.text
    assert "javascript:x" in bad.text  # the typed text is kept for correcting
    assert (await server.core.tenants.get_tenant("acme")).settings.get("embed_origins") is None

    sites = "https://www.acme.example/\nhttps://shop.acme.example\nhttps://www.acme.example"
    saved = await admin.post(
        "/admin/apps", data={"csrf_token": token, "form": "sites", "origins": sites}
    )
    assert saved.status_code == 303
    settings = (await server.core.tenants.get_tenant("acme")).settings
    assert settings["embed_origins"] == ["https://www.acme.example", "https://shop.acme.example"]
    assert settings["embed_any_site"] is False
    await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
    async with server.client() as visitor:
        config = (await visitor.get("/widget/config.json")).json()
    assert config["sites"] == ["https://www.acme.example", "https://shop.acme.example"]

    anywhere = await admin.post(
        "/admin/apps",
        data={"csrf_token": token, "form": "sites", "origins": "", "any_site": "1"},
    )
    assert anywhere.status_code == 303
    await server.sees_tenant(await server.core.tenants.get_tenant("acme"))
    async with server.client() as visitor:
        assert (await visitor.get("/widget/config.json")).json()["sites"] == ["*"]
        csp = (await visitor.get("/kb/en/?embed=1")).headers["content-security-policy"]
    assert "frame-ancestors *" in csp
