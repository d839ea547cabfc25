"""Row 7: the agent socket opens only from the service's own pages, never from embedding sites.

The agent's cookie is SameSite=Lax, so a browser sends it along when a script on the company's
own marketing site (same site, another host) opens `/agent/ws`; the Origin is what tells them
apart. Visitors' sockets still open from the sites the tenant lets embed the chat.
"""

from __future__ import annotations

import httpx
import pytest

from tests.agent.test_console import TOKEN_RE, hidden, log_in
from tests.messenger.conftest import open_ws
from tests.security.conftest import ADMIN_PASSWORD, Served

MARKETING_SITE = "https://www.acme.example"


@pytest.fixture
async def agent_cookie(served: Served) -> str:
    """An admin of acme signed in, with the marketing site allowed to embed the chat."""
    async with served.client() as client:
        assert (await log_in(client, "admin@acme.test", ADMIN_PASSWORD)).status_code == 303
        page = await client.get("/admin/apps")
        sites = {"form": "sites", "origins": MARKETING_SITE}
        saved = await client.post(
            "/admin/apps", data={**sites, "csrf_token": hidden(TOKEN_RE, page.text)}
        )
        assert saved.status_code == 303, saved.text
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


async def visitor_token(client: httpx.AsyncClient) -> str:
    answer = await client.post("/messenger/token", json={})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


@pytest.mark.parametrize("origin", [MARKETING_SITE, "https://evil.example", None])
async def test_agent_socket_refuses_every_origin_but_its_own_host(
    served: Served, agent_cookie: str, origin: str | None
) -> None:
    ws = await open_ws(
        served.url, "/agent/ws", host=served.host(), origin=origin, cookie=agent_cookie
    )
    assert await ws.wait_closed() == 4403
    assert not [f for f in ws.frames if f.get("type") == "ready"]  # no conversation was read


async def test_agent_socket_opens_from_the_console(served: Served, agent_cookie: str) -> None:
    ws = await open_ws(served.url, "/agent/ws", host=served.host(), cookie=agent_cookie)
    await ws.send("hello")
    ready = await ws.expect("ready")
    assert ready["role"] == "agent"
    await ws.close()


async def test_visitor_socket_still_opens_from_an_embedding_site(
    served: Served, agent_cookie: str
) -> None:
    async with served.client() as client:
        token = await visitor_token(client)
    ws = await open_ws(served.url, "/messenger/ws", host=served.host(), origin=MARKETING_SITE)
    await ws.send("hello", token=token)
    assert (await ws.expect("ready"))["role"] == "visitor"
    await ws.close()
