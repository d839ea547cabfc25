"""/admin/widget: the widget's settings, the live preview's inputs and the snippet to paste."""

from __future__ import annotations

import html

import pytest

from portal.core.contract import FormDraft
from portal.security import hash_password
from portal.widget.settings import WidgetSettings
from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.conftest import TEST_HASH_COST, sqlite_database

EMAIL, PASSWORD = "boss@acme.test", "boss password 123"
SNIPPET = (
    "<script>window.PortalWidget=window.PortalWidget||function(){(PortalWidget.q="
    "PortalWidget.q||[]).push(arguments)}</script>\n"
    '<script async src="http://acme.portal.test/widget.js"></script>'
)


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: these pages read what every core offers; tests/core runs both databases."""
    return sqlite_database(tmp_path)


@pytest.fixture
async def admin(server):
    tenant = await server.tenant()
    await server.core.tenants.create_agent(
        tenant.id, EMAIL, "Boss", hash_password(PASSWORD, cost=TEST_HASH_COST), "admin"
    )
    async with server.client() as client:
        assert (await log_in(client, EMAIL, PASSWORD)).status_code == 303
        yield client, tenant


async def stored(server) -> WidgetSettings:
    return WidgetSettings.for_tenant(await server.core.tenants.get_tenant("acme"))


def _form(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "apps": ["kb", "form"],
        "position": "left",
        "offset_x": "40",
        "offset_y": "0",
        "z_index": "500",
        "label": "  Questions?  ",
        "greeting": "Hi there!\nAsk us anything.",
        "form_id": "",
        "away": "form",
    }
    return {**values, **changes}


async def _post(client, **changes: object):
    page = await client.get("/admin/widget")
    return await client.post(
        "/admin/widget", data={**_form(**changes), "csrf_token": hidden(TOKEN_RE, page.text)}
    )


async def test_page_shows_the_defaults_the_preview_and_the_snippets(server, admin):
    client, tenant = admin
    page = await client.get("/admin/widget")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    text = html.unescape(page.text)
    assert SNIPPET in text
    assert '<script nonce="YOUR-NONCE" async src="http://acme.portal.test/widget.js">' in text
    assert "script-src http://acme.portal.test 'nonce-YOUR-NONCE'" in text
    assert "frame-src http://acme.portal.test" in text
    assert "connect-src http://acme.portal.test" in text
    assert 'href="/admin/chat"' in page.text  # where the site must be allowed
    for app in ("kb", "chat", "form", "tickets"):
        assert f'name="apps" value="{app}" checked' in page.text
    assert 'name="position" value="right" checked' in page.text
    assert 'name="offset_x" type="number" value="20"' in page.text
    assert 'name="z_index" type="number" value="10000"' in page.text
    assert '<option value="no_chat" selected>' in page.text
    assert "require_identity" not in page.text
    # The preview is drawn by a script from our origin; no inline script or style.
    assert "/static/admin/widget-preview.js" in page.text
    assert 'id="widget-preview"' in page.text and "<script>" not in page.text.split("<pre")[0]
    assert 'aria-current="page">Widget<' in page.text
    script = await client.get("/static/admin/widget-preview.js")
    assert script.status_code == 200 and "setProperty" in script.text


async def test_valid_changes_are_saved(server, admin):
    client, tenant = admin
    first = await server.core.forms.save_form(tenant.id, FormDraft(title="Write to us"))
    second = await server.core.forms.save_form(tenant.id, FormDraft(title="Report a bug"))
    await server.core.tenants.update_tenant_settings(tenant.id, {"widget_require_identity": True})
    saved = await _post(client, form_id=str(second.id))
    assert saved.status_code == 303
    assert saved.headers["location"] == "/admin/widget?done=1"
    assert await stored(server) == WidgetSettings(
        apps=("kb", "form"),
        position="left",
        offset_x=40,
        offset_y=0,
        z_index=500,
        label="Questions?",
        greeting="Hi there! Ask us anything.",
        form_id=second.id,
        away="form",
        require_identity=True,  # left to the identity page
    )
    again = await client.get(saved.headers["location"])
    assert "The widget settings are saved." in again.text
    assert f'<option value="{second.id}" selected>Report a bug</option>' in again.text
    assert f'<option value="{first.id}">Write to us</option>' in again.text
    assert 'name="apps" value="chat">' in again.text  # unchecked now
    # "First form" again: no form id stored.
    assert (await _post(client, form_id="")).status_code == 303
    assert (await stored(server)).form_id is None


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"apps": []}, "apps", "Choose at least one app."),
        ({"apps": ["kb", "games"]}, "apps", "Choose at least one app."),
        ({"position": "top"}, "position", "Choose one of the options."),
        ({"offset_x": "201"}, "offset_x", "A whole number from 0 to 200."),
        ({"offset_y": "-1"}, "offset_y", "A whole number from 0 to 200."),
        ({"offset_y": "ten"}, "offset_y", "A whole number from 0 to 200."),
        ({"z_index": "2147483648"}, "z_index", "A whole number from 0 to 2147483647."),
        ({"label": "x" * 41}, "label", "At most 40 characters."),
        ({"greeting": "y" * 201}, "greeting", "At most 200 characters."),
        ({"form_id": "999"}, "form_id", "Choose one of the options."),
        ({"form_id": "first"}, "form_id", "Choose one of the options."),
        ({"away": "panic"}, "away", "Choose one of the options."),
    ],
)
async def test_each_bad_value_is_refused_with_its_reason_and_nothing_is_saved(
    server, admin, changes, field, message
):
    client, tenant = admin
    refused = await _post(client, **changes)
    assert refused.status_code == 400
    assert f'<p class="error" id="f-{field}-error">{message}</p>' in refused.text
    assert refused.text.count('class="error"') == 1
    assert (await stored(server)) == WidgetSettings()
    assert "widget_apps" not in (await server.core.tenants.get_tenant("acme")).settings
    # What the admin typed is kept.
    if field in ("offset_x", "offset_y", "z_index"):
        assert f'name="{field}" type="number" value="{changes[field]}"' in refused.text


async def test_an_agent_who_is_not_an_admin_is_refused(server):
    tenant = await server.tenant()
    await server.agent(tenant, "agent@acme.test", PASSWORD, role="agent")
    async with server.client() as client:
        assert (await log_in(client, "agent@acme.test", PASSWORD)).status_code == 303
        assert (await client.get("/admin/widget")).status_code == 403
        denied = await client.post("/admin/widget", data=_form())
        assert denied.status_code == 403
    assert "widget_apps" not in (await server.core.tenants.get_tenant("acme")).settings


async def test_a_post_without_the_csrf_token_is_refused(server, admin):
    client, tenant = admin
    refused = await client.post("/admin/widget", data=_form())
    assert refused.status_code == 403
    wrong = await client.post("/admin/widget", data={**_form(), "csrf_token": "forged"})
    assert wrong.status_code == 403
    assert "widget_apps" not in (await server.core.tenants.get_tenant("acme")).settings


async def test_signed_out_visitors_are_sent_to_the_login(server):
    await server.tenant()
    async with server.client() as client:
        page = await client.get("/admin/widget")
    assert page.status_code == 303 and page.headers["location"].startswith("/admin/login")
