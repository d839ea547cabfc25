"""The widget's routes over HTTP: the loader with its config, revalidation, the panel page."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from portal.core.contract import FormDraft
from tests.conftest import BASE_DOMAIN

HOST = f"acme.{BASE_DOMAIN}"
CONFIG_RE = re.compile(r"var C = (\{.*?\});\n")


def inlined_config(script: str) -> dict:
    match = CONFIG_RE.search(script)
    assert match, "no config inlined"
    return json.loads(match.group(1))


@pytest.fixture
async def acme(server):
    return await server.tenant()


async def test_the_loader_carries_the_tenants_config(server, acme):
    await server.core.tenants.update_branding(
        acme.id, name="Acme", logo_url="", primary_color="#aa3300"
    )
    async with server.client(HOST) as client:
        answer = await client.get("/widget.js", headers={"accept-language": "nb"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["cache-control"] == "no-cache"
    config = inlined_config(answer.text)
    assert config["name"] == "Acme"
    assert config["color"] == "#aa3300"
    assert config["lang"] == "nb"
    assert config["apps"] == ["kb", "chat", "tickets"]  # no form yet
    assert config["panel"] == "/widget/panel"
    assert config["origin"] == f"http://{HOST}"


async def test_the_loader_is_revalidated_by_etag(server, acme):
    async with server.client(HOST) as client:
        first = await client.get("/widget.js")
        again = await client.get("/widget.js", headers={"if-none-match": first.headers["etag"]})
        assert again.status_code == 304
        await server.settings_changed(acme, {"widget_position": "left"})
        changed = await client.get("/widget.js", headers={"if-none-match": first.headers["etag"]})
    assert changed.status_code == 200
    assert inlined_config(changed.text)["position"] == "left"


async def test_apps_follow_the_settings_forms_and_chat(server, acme):
    form = await server.core.forms.save_form(acme.id, FormDraft("Contact us"))
    await server.core.tenants.update_tenant_settings(
        acme.id, {"widget_apps": ["chat", "form", "kb"], "chat_enabled": False}
    )
    async with server.client(HOST) as client:
        config = (await client.get("/widget/config.json")).json()
    assert config["apps"] == ["kb", "form"]
    assert config["form"] == form.id


async def test_away_can_hide_the_launcher(server, acme):
    closed = {"timezone": "UTC", "days": {}}  # never open
    await server.core.tenants.update_tenant_settings(
        acme.id, {"business_hours": closed, "widget_away": "hide"}
    )
    async with server.client(HOST) as client:
        config = (await client.get("/widget/config.json")).json()
    assert config["visible"] is False and config["apps"] == []


async def test_a_hostile_tenant_name_cannot_break_out_of_the_script(server):
    tenant = await server.core.tenants.create_tenant("evil", "</script><script>alert(1)</script>")
    async with server.client(f"{tenant.slug}.{BASE_DOMAIN}") as client:
        script = (await client.get("/widget.js")).text
    assert "</script>" not in script
    assert inlined_config(script)["name"] == "</script><script>alert(1)</script>"


async def test_the_panel_may_be_framed_by_the_tenants_sites_only(server, acme):
    await server.core.tenants.update_tenant_settings(
        acme.id, {"embed_origins": ["https://www.acme.example"]}
    )
    async with server.client(HOST) as client:
        panel = await client.get("/widget/panel", params={"lang": "ja"})
    assert panel.status_code == 200
    csp = panel.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://www.acme.example" in csp
    assert 'lang="ja"' in panel.text


async def test_size_budgets(server, acme):
    """The loader and the panel's first view (tests/browser counts what comes before a click)."""
    async with server.client(HOST) as client:
        loader = (await client.get("/widget.js")).content
        panel = (await client.get("/widget/panel")).content
        css = (await client.get("/static/widget/panel.css")).content
        script = (await client.get("/static/widget/panel.js")).content
    gz = lambda data: len(gzip.compress(data, 9))  # noqa: E731
    assert gz(loader) <= 6 * 1024, gz(loader)
    assert gz(panel) + gz(css) + gz(script) <= 50 * 1024


async def test_the_panel_mirrors_for_right_to_left_languages(server, acme):
    async with server.client(HOST) as client:
        arabic = await client.get("/widget/panel", params={"lang": "ar"})
        english = await client.get("/widget/panel", params={"lang": "en"})
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert '<html lang="en" dir="ltr">' in english.text


async def test_an_article_for_the_panel(server, acme):
    await server.core.tenants.update_tenant_settings(
        acme.id, {"embed_origins": ["https://www.acme.example"]}
    )
    await server.article(acme, "Reset your password", "Open <b>Settings</b>.", slug="reset")
    async with server.client(HOST) as client:
        found = await client.get("/widget/article/en/reset")
        other_language = await client.get("/widget/article/nb/reset")  # falls back to the tenant's
        missing = await client.get("/widget/article/en/nothing-here")
    assert found.status_code == 200 and "Reset your password" in found.text
    assert (
        "frame-ancestors 'self' https://www.acme.example"
        in found.headers["content-security-policy"]
    )
    assert other_language.status_code == 200
    assert missing.status_code == 404
