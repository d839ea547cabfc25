"""Admin chat settings: business hours, answer timeout, allowed sites and canned replies."""

from __future__ import annotations

import pytest

from portal.security import hash_password
from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.conftest import TEST_HASH_COST

EMAIL, PASSWORD = "boss@acme.test", "boss password 123"


@pytest.fixture
async def admin(server):
    tenant = await server.tenant()
    await server.core.tenants.create_agent(
        tenant.id, EMAIL, "Boss", hash_password(PASSWORD, cost=TEST_HASH_COST), "admin"
    )
    async with server.client() as client:
        assert (await log_in(client, EMAIL, PASSWORD)).status_code == 303
        yield client, tenant


def _form(**changes: str) -> dict[str, str]:
    values = {
        "enabled": "1",
        "prechat": "required",
        "answer_timeout": "90",
        "timezone": "Europe/Oslo",
        "day_mon": "09:00-12:00, 13:00-17:00",
        "day_fri": "09:00-15:00",
    }
    return {**values, **changes}


async def test_chat_settings_are_saved_to_the_tenant(server, admin):
    client, tenant = admin
    page = await client.get("/admin/chat")
    assert page.status_code == 200
    saved = await client.post(
        "/admin/chat", data={**_form(), "csrf_token": hidden(TOKEN_RE, page.text)}
    )
    assert saved.status_code == 303
    settings = (await server.core.tenants.get_tenant("acme")).settings
    assert settings["chat_prechat"] == "required"
    assert settings["chat_answer_timeout_s"] == 90
    assert settings["business_hours"] == {
        "timezone": "Europe/Oslo",
        "days": {"mon": ["09:00-12:00", "13:00-17:00"], "fri": ["09:00-15:00"]},
    }
    assert "embed_origins" not in settings  # the sites are edited with the apps (/admin/apps)
    again = await client.get("/admin/chat")
    assert "09:00-12:00, 13:00-17:00" in again.text


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"day_tue": "9 to 5"}, "The business hours cannot be read"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"answer_timeout": "3"}, "A number of seconds from 10 to 86400."),
    ],
)
async def test_bad_chat_settings_are_refused_with_the_reason_and_nothing_is_saved(
    server, admin, changes, message
):
    client, tenant = admin
    page = await client.get("/admin/chat")
    refused = await client.post(
        "/admin/chat", data={**_form(**changes), "csrf_token": hidden(TOKEN_RE, page.text)}
    )
    assert refused.status_code == 400
    assert message in refused.text.replace("&#34;", '"')
    assert "business_hours" not in (await server.core.tenants.get_tenant("acme")).settings


async def test_canned_replies_are_added_refused_when_taken_and_deleted(server, admin):
    client, tenant = admin
    token = hidden(TOKEN_RE, (await client.get("/admin/chat")).text)
    body = "Hi {{customer.name}}, <b>thanks</b> for writing!"
    added = await client.post(
        "/admin/chat/canned", data={"shortcut": "Hello", "body": body, "csrf_token": token}
    )
    assert added.status_code == 303
    (canned,) = await server.core.chat.list_canned_responses(tenant.id)
    assert canned.shortcut == "hello" and canned.body == body
    page = await client.get("/admin/chat")
    assert "&lt;b&gt;thanks&lt;/b&gt;" in page.text  # shown as text, not markup

    taken = await client.post(
        "/admin/chat/canned", data={"shortcut": "hello", "body": "again", "csrf_token": token}
    )
    assert taken.status_code == 400 and "That shortcut is taken." in taken.text
    deleted = await client.post(
        f"/admin/chat/canned/{canned.id}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 303
    assert await server.core.chat.list_canned_responses(tenant.id) == []
