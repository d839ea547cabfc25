"""Admin settings page: every tenant setting with its default, checked, saved, in effect at once."""

from __future__ import annotations

import html
import re

import pytest

from portal.admin.settings import MB, SETTINGS, shown
from portal.attachments import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT
from portal.core.contract import FormDraft
from portal.customer.links import NOTIFICATION_LINK_HOURS, SIGN_IN_MINUTES
from portal.forms.abuse import DEFAULT_IP_LIMIT, DEFAULT_TENANT_LIMIT
from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.conftest import sqlite_database
from tests.forms.helpers import send_form

EMAIL, PASSWORD = "boss@acme.test", "boss password 123"
PATH = "/admin/settings"


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite only: these pages read what every core offers; tests/core runs both databases."""
    return sqlite_database(tmp_path)


@pytest.fixture
async def admin(server):
    tenant = await server.tenant()
    await server.agent(tenant, EMAIL, PASSWORD)
    async with server.client() as client:
        assert (await log_in(client, EMAIL, PASSWORD)).status_code == 303
        yield client, tenant


def defaults(**changes: str) -> dict[str, str]:
    """The form as the page first shows it (every default), with `changes`."""
    values = {s.key: shown(s, {}) for s in SETTINGS}
    values = {key: value for key, value in values.items() if value}  # unchecked boxes: absent
    return {**values, **changes}


def field_value(page: str, key: str) -> str:
    """What the page shows for a setting: an input's value, the selected option, or the box."""
    if m := re.search(rf'<input id="f-{key}" name="{key}" type="text" value="([^"]*)"', page):
        return html.unescape(m.group(1))
    if m := re.search(rf'<select id="f-{key}" name="{key}".*?</select>', page, re.S):
        selected = re.findall(r'<option value="([^"]+)" selected>', m.group(0))
        assert len(selected) <= 1
        return selected[0] if selected else ""
    box = re.search(rf'<input type="checkbox" id="f-{key}" name="{key}" value="1"( checked)?', page)
    assert box, f"no field for {key} on the page"
    return "1" if box.group(1) else ""


def field_error(page: str, key: str) -> str:
    match = re.search(rf'<p class="error" id="f-{key}-error">(.*?)</p>', page, re.S)
    assert match, f"no error for {key} on the page"
    return html.unescape(match.group(1))


async def post(client, data: dict[str, str]):
    token = hidden(TOKEN_RE, (await client.get(PATH)).text)
    return await client.post(PATH, data={**data, "csrf_token": token})


async def test_the_page_lists_every_setting_with_the_default_the_code_uses(admin):
    client, _ = admin
    page = await client.get(PATH)
    assert page.status_code == 200
    assert f'href="{PATH}" aria-current="page"' in page.text  # in the admin menu
    for heading in ("Customer portal", "Attachments", "Web forms"):
        assert f"<legend>{heading}</legend>" in page.text
    expected = {
        "ticket_visibility": "own",
        "expected_response": "",
        "magic_link_minutes": str(SIGN_IN_MINUTES),
        "notification_link_hours": str(NOTIFICATION_LINK_HOURS),
        "customer_notifications": "1",
        "attachment_max_bytes": f"{DEFAULT_MAX_BYTES / MB:g}",
        "attachment_max_count": str(DEFAULT_MAX_COUNT),
        "attachment_dangerous_names": "rename",
        "form_ip_limit_per_minute": str(DEFAULT_IP_LIMIT),
        "form_tenant_limit_per_minute": str(DEFAULT_TENANT_LIMIT),
    }
    assert {s.key for s in SETTINGS} == set(expected)
    assert {key: field_value(page.text, key) for key in expected} == expected
    assert "From 1 to 1000." in page.text  # each number says its bounds


async def test_valid_changes_are_saved_and_shown(server, admin):
    client, tenant = admin
    changes = {
        "ticket_visibility": "organization",
        "expected_response": "  Within one business day  ",
        "magic_link_minutes": "30",
        "notification_link_hours": "24",
        "attachment_max_bytes": "2,5",  # as a Norwegian writes 2.5
        "attachment_max_count": "3",
        "attachment_dangerous_names": "refuse",
        "form_ip_limit_per_minute": "5",
    }
    data = defaults(**changes)
    del data["customer_notifications"]  # the box unchecked
    saved = await post(client, data)
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{PATH}?saved=1"
    stored = (await server.core.tenants.get_tenant("acme")).settings
    assert stored == {
        "ticket_visibility": "organization",
        "expected_response": "Within one business day",
        "magic_link_minutes": 30,
        "notification_link_hours": 24,
        "customer_notifications": False,
        "attachment_max_bytes": int(2.5 * MB),
        "attachment_max_count": 3,
        "attachment_dangerous_names": "refuse",
        "form_ip_limit_per_minute": 5,
        # form_tenant_limit_per_minute was left alone: it keeps following the code's default
    }
    page = await client.get(saved.headers["location"])
    assert "The settings are saved." in page.text
    assert field_value(page.text, "attachment_max_bytes") == "2.5"
    assert field_value(page.text, "customer_notifications") == ""
    assert field_value(page.text, "ticket_visibility") == "organization"

    # Saving the page again unchanged writes nothing new, and checking the box turns mail on.
    again = await post(
        client, {**data, "attachment_max_bytes": "2.5", "customer_notifications": "1"}
    )
    assert again.status_code == 303
    stored = (await server.core.tenants.get_tenant("acme")).settings
    assert stored["customer_notifications"] is True
    assert stored["attachment_max_bytes"] == int(2.5 * MB)


async def test_a_change_takes_effect_on_the_very_next_request(server, admin):
    client, tenant = admin
    form = await server.core.forms.save_form(tenant.id, FormDraft("Contact"))
    async with server.client() as visitor:
        # Two submissions under the default limit: the tenant is now cached with that setting.
        for _ in range(2):
            assert (await send_form(visitor, form.id)).status_code == 303
        assert (await post(client, defaults(form_ip_limit_per_minute="1"))).status_code == 303
        assert (await send_form(visitor, form.id)).status_code == 303
        assert (await send_form(visitor, form.id)).status_code == 429


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("form_ip_limit_per_minute", "0", "Write a whole number from 1 to 1000."),
        ("form_tenant_limit_per_minute", "100001", "Write a whole number from 1 to 100000."),
        ("magic_link_minutes", "ten", "Write a whole number from 5 to 1440."),
        ("notification_link_hours", "-3", "Write a whole number from 1 to 720."),
        ("attachment_max_count", "2.5", "Write a whole number from 1 to 20."),
        ("attachment_max_bytes", "25.5", "Write a number from 1 to 25."),
        ("attachment_max_bytes", "1e3", "Write a number from 1 to 25."),
        ("ticket_visibility", "everyone", "Choose one of the options."),
        ("attachment_dangerous_names", "allow", "Choose one of the options."),
        ("expected_response", "x" * 201, "Use at most 200 characters."),
    ],
)
async def test_a_bad_value_is_refused_with_the_reason_and_nothing_is_saved(
    server, admin, key, value, message
):
    client, _ = admin
    # A valid change next to the bad one must not be saved either.
    data = defaults(**{"attachment_max_count": "2", "expected_response": "Soon", key: value})
    refused = await post(client, data)
    assert refused.status_code == 400
    assert "Please correct the fields marked below." in refused.text
    assert field_error(refused.text, key) == message
    # What was typed comes back (a select cannot show an unknown choice: none is selected).
    choice = key in ("ticket_visibility", "attachment_dangerous_names")
    assert field_value(refused.text, key) == ("" if choice else value)
    if key != "expected_response":
        assert field_value(refused.text, "expected_response") == "Soon"
    assert (await server.core.tenants.get_tenant("acme")).settings == {}


async def test_an_agent_may_not_see_or_change_the_settings(server, admin):
    _, tenant = admin
    await server.agent(tenant, "agent@acme.test", "agent password 123", role="agent")
    async with server.client() as client:
        assert (await log_in(client, "agent@acme.test", "agent password 123")).status_code == 303
        assert (await client.get(PATH)).status_code == 403
        token = hidden(TOKEN_RE, (await client.get("/agent/tickets")).text)
        denied = await client.post(
            PATH, data=defaults(form_ip_limit_per_minute="1", csrf_token=token)
        )
        assert denied.status_code == 403
    assert (await server.core.tenants.get_tenant("acme")).settings == {}


async def test_a_post_without_a_valid_csrf_token_is_refused(server, admin):
    client, _ = admin
    missing = await client.post(PATH, data=defaults(form_ip_limit_per_minute="1"))
    assert missing.status_code == 403
    forged = await client.post(
        PATH, data=defaults(form_ip_limit_per_minute="1", csrf_token="forged")
    )
    assert forged.status_code == 403
    assert (await server.core.tenants.get_tenant("acme")).settings == {}


async def test_signed_out_visitors_are_sent_to_sign_in(server):
    await server.tenant()
    async with server.client() as client:
        page = await client.get(PATH)
        posted = await client.post(PATH, data=defaults(form_ip_limit_per_minute="1"))
    assert page.status_code == posted.status_code == 303
    assert page.headers["location"].startswith("/admin/login?")
    assert (await server.core.tenants.get_tenant("acme")).settings == {}
