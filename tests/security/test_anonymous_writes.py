"""Anonymous writes against a real `portal serve`: every one is rate limited, and a chat
transcript goes only to the chat's own address (findings 2, 3/4, 5 and 12 of issue 8).

Each test speaks from fresh client addresses (`fresh_ip`), so the per-address limits start from
zero; the server and its per-tenant counts are shared by the module.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from websockets.asyncio.client import connect

from portal import ratelimit as rl
from portal.core.contract import ArticleDraft, FormDraft
from portal.core.embedded import schema as t
from portal.core.embedded.core import EmbeddedCore
from tests.forms.helpers import VALID, api_send, api_token
from tests.messenger.conftest import Ws, client_id
from tests.security.conftest import Served, fresh_ip

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)
_runs = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test (or run of this module's server) used."""
    return f"{prefix}{next(_runs)}x{fresh_ip().replace('.', '')}"


# ------------------------------------------------------------------ helpers
async def new_visitor(served: Served, ip: str) -> dict[str, Any]:
    async with served.client("acme", ip=ip) as client:
        response = await client.post("/messenger/token", json={})
    assert response.status_code == 200, response.text
    return response.json()


async def visitor_socket(served: Served, token: str, ip: str) -> Ws:
    # The URL names the tenant's host (the Host header); the socket goes to the served port.
    conn = await connect(
        f"ws://{served.host('acme')}:{served.port}/messenger/ws",
        additional_headers={"X-Forwarded-For": ip},
        open_timeout=5,
        host="127.0.0.1",
        port=served.port,
    )
    ws = Ws(conn)
    ws.start()
    await ws.send("hello", token=token)
    await ws.expect("ready")
    return ws


async def until(ws: Ws, done: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Wait until the frames received so far satisfy `done` (the socket must stay open)."""
    async with ws._arrived:
        await asyncio.wait_for(
            ws._arrived.wait_for(lambda: done(ws.frames) or ws.closed.is_set()), 15
        )
    assert done(ws.frames), f"socket closed ({ws.close_code}) before the answers came"


def of(frames: list[dict[str, Any]], kind: str, code: str | None = None) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == kind and (code is None or f.get("code") == code)]


async def count_rows(core: EmbeddedCore, table: sa.Table, *where: Any) -> int:
    async with core.engine.begin() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(*where)
        return (await conn.execute(query)).scalar_one()


def assert_retry_after(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert re.fullmatch(r"[1-9][0-9]*", response.headers["retry-after"])


def assert_rate_limited(frame: dict[str, Any], cid: str | None = None) -> None:
    assert frame["type"] == "error" and frame["code"] == "rate_limited", frame
    assert isinstance(frame["retry_after"], int) and frame["retry_after"] >= 1
    assert "try again" in frame["message"]
    if cid is not None:
        assert frame["client_id"] == cid


def transcripts_to(served: Served, address: str, subject: str) -> int:
    return sum(1 for m in served.inbox.messages if m["To"] == address and m["Subject"] == subject)


# ------------------------------------------------------------------ row 2: transcripts
async def test_transcripts_go_only_to_the_chats_own_address(served: Served) -> None:
    ip = fresh_ip()
    visitor = await new_visitor(served, ip)
    ws = await visitor_socket(served, visitor["token"], ip)
    owner, subject = f"{unique('owner')}@example.com", unique("Relay test ")
    await ws.send("start", client_id=client_id(), email=owner, body=subject)
    conversation_id = (await ws.expect("started"))["conversation"]["id"]

    victims = [f"victim{i}-{unique('v')}@example.net" for i in range(40)]
    # Five sockets of the same visitor, eight each: a refusal is a bad frame, and ten in a row
    # would close the socket (which only slows an attacker down further).
    for batch in range(5):
        tab = await visitor_socket(served, visitor["token"], ip)
        for victim in victims[batch * 8 : batch * 8 + 8]:
            await tab.send("transcript", conversation_id=conversation_id, email=victim)
        await until(tab, lambda frames: len(of(frames, "error", "not_allowed")) == 8)
        assert all("address this chat has" in f["message"] for f in of(tab.frames, "error"))
        await tab.close()

    for _ in range(6):  # to its own address (named, or not): a few, then rate limited
        await ws.send("transcript", conversation_id=conversation_id, email=owner.upper())
    await until(
        ws,
        lambda frames: (
            len(of(frames, "transcript_sent")) + len(of(frames, "error", "rate_limited")) == 6
        ),
    )
    sent = of(ws.frames, "transcript_sent")
    assert len(sent) == rl.TRANSCRIPTS_PER_CONVERSATION.limit
    for refusal in of(ws.frames, "error", "rate_limited"):
        assert_rate_limited(refusal)
    await served.inbox.wait_for(owner)
    addressed = {m["To"] for m in served.inbox.messages}
    assert not addressed & set(victims)
    assert transcripts_to(served, owner, f"Acme: {subject}") <= len(sent)
    await ws.close()


async def test_a_chat_without_email_takes_the_transcripts_address_then_keeps_it(
    served: Served, served_core: EmbeddedCore
) -> None:
    ip = fresh_ip()
    ws = await visitor_socket(served, (await new_visitor(served, ip))["token"], ip)
    subject = unique("No email yet ")
    await ws.send("start", client_id=client_id(), body=subject)
    conversation_id = (await ws.expect("started"))["conversation"]["id"]

    first, second = f"{unique('first')}@example.com", f"{unique('second')}@example.net"
    await ws.send("transcript", conversation_id=conversation_id, email=first)
    await ws.expect("transcript_sent")
    await ws.send("transcript", conversation_id=conversation_id, email=second, client_id="t2")
    refused = await ws.expect("error")
    assert refused["code"] == "not_allowed" and refused["client_id"] == "t2"
    tenant_id = served.tenants["acme"].id
    conversation = await served_core.chat.get_conversation(tenant_id, conversation_id)
    assert conversation.visitor_email == first  # it became the chat's contact address
    await served.inbox.wait_for(first)
    assert not [m for m in served.inbox.messages if m["To"] == second]
    await ws.close()


async def test_email_changes_per_conversation_are_limited(
    served: Served, served_core: EmbeddedCore
) -> None:
    ip = fresh_ip()
    ws = await visitor_socket(served, (await new_visitor(served, ip))["token"], ip)
    await ws.send("start", client_id=client_id(), body=unique("Changes "))
    conversation_id = (await ws.expect("started"))["conversation"]["id"]
    addresses = [f"{unique('change')}@example.com" for _ in range(8)]
    for i, address in enumerate(addresses):
        await ws.send("contact", conversation_id=conversation_id, email=address, client_id=f"k{i}")
    refusals = len(addresses) - rl.EMAIL_CHANGES_PER_CONVERSATION.limit
    await until(ws, lambda frames: len(of(frames, "error", "rate_limited")) == refusals)
    for i, refusal in enumerate(of(ws.frames, "error", "rate_limited")):
        assert_rate_limited(refusal, f"k{rl.EMAIL_CHANGES_PER_CONVERSATION.limit + i}")
    conversation = await served_core.chat.get_conversation(
        served.tenants["acme"].id, conversation_id
    )
    assert conversation.visitor_email == addresses[rl.EMAIL_CHANGES_PER_CONVERSATION.limit - 1]
    await ws.close()


# ------------------------------------------------------------------ row 5: chat starts
async def test_a_start_flood_from_one_visitor_makes_few_chats_tickets_and_customers(
    served: Served, served_core: EmbeddedCore
) -> None:
    ip = fresh_ip()
    visitor = await new_visitor(served, ip)
    prefix = unique("flood")
    sockets = [await visitor_socket(served, visitor["token"], ip) for _ in range(8)]
    for n, ws in enumerate(sockets):  # 8 x 15 = 120 starts, each socket within its burst
        for i in range(15):
            email = f"{prefix}-{n}-{i}@example.com"
            await ws.send("start", client_id=f"s{n}-{i}", email=email, body="Flood!")
    for ws in sockets:
        await until(ws, lambda f: len(of(f, "started")) + len(of(f, "error", "rate_limited")) == 15)
    started = [f for ws in sockets for f in of(ws.frames, "started")]
    refused = [f for ws in sockets for f in of(ws.frames, "error", "rate_limited")]
    assert len(started) == rl.STARTS_PER_VISITOR.limit
    assert len(refused) == 120 - rl.STARTS_PER_VISITOR.limit
    for frame in refused:
        assert_rate_limited(frame)
        assert frame["client_id"].startswith("s")
    # Nobody is online: each allowed chat becomes a ticket; wait for those to be made.
    for ws in sockets:
        await until(ws, lambda f: len(of(f, "availability")) >= len(of(f, "started")))

    c = t.conversations.c
    mine = c.visitor_id == visitor["visitor_id"]
    assert await count_rows(served_core, t.conversations, mine) == rl.STARTS_PER_VISITOR.limit
    ticketed = await count_rows(served_core, t.conversations, mine, c.ticket_id.is_not(None))
    assert ticketed <= rl.STARTS_PER_VISITOR.limit
    customers = await count_rows(served_core, t.customers, t.customers.c.email.like(f"{prefix}-%"))
    assert customers == rl.STARTS_PER_VISITOR.limit
    for ws in sockets:
        await ws.close()


async def test_new_visitors_from_one_address_start_a_few_chats_an_hour(
    served: Served, served_core: EmbeddedCore
) -> None:
    ip = fresh_ip()
    prefix = unique("many")
    frames = []
    for i in range(rl.STARTS_PER_ADDRESS.limit + 3):
        ws = await visitor_socket(served, (await new_visitor(served, ip))["token"], ip)
        await ws.send("start", client_id="s", body="Hi", email=f"{prefix}-{i}@example.com")
        await until(ws, lambda f: bool(of(f, "started") or of(f, "error")))
        frames += of(ws.frames, "started") + of(ws.frames, "error")
        await ws.close()
    assert [f["type"] for f in frames].count("started") == rl.STARTS_PER_ADDRESS.limit
    for frame in frames[rl.STARTS_PER_ADDRESS.limit :]:
        assert_rate_limited(frame, "s")
    customers = await count_rows(served_core, t.customers, t.customers.c.email.like(f"{prefix}-%"))
    assert customers == rl.STARTS_PER_ADDRESS.limit


async def test_a_chat_that_would_become_a_ticket_counts_against_the_forms_limit(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant_id = served.tenants["acme"].id
    form = await served_core.forms.save_form(tenant_id, FormDraft(unique("Contact ")))
    ip = fresh_ip()
    async with served.client("acme", ip=ip) as client:
        for i in range(rl.SUBMISSIONS_PER_ADDRESS.limit):
            token = (await api_token(client, form.id))["form_token"]
            values = {**VALID, "form_token": token, "idempotency_key": f"{unique('key')}-{i}"}
            assert (await api_send(client, form.id, values)).status_code == 201
    ws = await visitor_socket(served, (await new_visitor(served, ip))["token"], ip)
    email = f"{unique('ticket')}@example.com"
    await ws.send("start", client_id="with-email", email=email, body="Nobody is online")
    assert_rate_limited(await ws.expect("error"), "with-email")
    c = t.conversations.c
    assert await count_rows(served_core, t.conversations, c.visitor_email == email) == 0
    # Without an email the chat makes no ticket yet, so it may start.
    await ws.send("start", client_id="no-email", body="Just asking")
    await ws.expect("started", client_id="no-email")
    await ws.close()


# ------------------------------------------------------------------ rows 3/4: HTTP floods
async def test_a_token_flood_gets_429_and_a_known_visitor_keeps_its_token(served: Served) -> None:
    ip = fresh_ip()
    async with served.client("acme", ip=ip) as client:
        statuses = []
        kept = None
        for _ in range(rl.TOKENS_PER_ADDRESS.limit + 5):
            response = await client.post("/messenger/token", json={})
            statuses.append(response.status_code)
            if response.status_code == 200:
                kept = response.json()["token"]
        assert statuses.count(200) == rl.TOKENS_PER_ADDRESS.limit
        assert_retry_after(response)
        assert "Wait" in response.json()["error"] and response.json()["retry_after"] >= 1
        renewed = await client.post("/messenger/token", json={"token": kept})
        assert renewed.status_code == 200 and renewed.json()["token"] == kept


async def test_an_upload_flood_gets_429(served: Served) -> None:
    ip = fresh_ip()
    token = (await new_visitor(served, ip))["token"]
    async with served.client("acme", ip=ip) as client:
        statuses = []
        for _ in range(rl.UPLOADS_PER_VISITOR.limit + 5):
            response = await client.post(
                "/messenger/uploads",
                files={"file": ("a.png", PNG, "image/png")},
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.append(response.status_code)
    assert statuses.count(201) == rl.UPLOADS_PER_VISITOR.limit
    assert_retry_after(response)


async def test_an_upload_over_the_tenants_size_is_refused(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant_id = served.tenants["globex"].id
    await served_core.tenants.update_tenant_settings(tenant_id, {"attachment_max_bytes": 2048})
    ip = fresh_ip()
    async with served.client("globex", ip=ip) as client:
        token = (await client.post("/messenger/token", json={})).json()["token"]
        big = await client.post(
            "/messenger/uploads",
            files={"file": ("big.png", PNG + b"\0" * 4096, "image/png")},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert big.status_code == 413


async def test_a_deflection_flood_gets_429(served: Served, served_core: EmbeddedCore) -> None:
    tenant_id = served.tenants["acme"].id
    form = await served_core.forms.save_form(tenant_id, FormDraft(unique("Deflect ")))
    slug = unique("deflect-article-")
    article = await served_core.kb.save_article(
        tenant_id, ArticleDraft("en", slug, "Deflected", "Read me.")
    )
    ip = fresh_ip()
    async with served.client("acme", ip=ip) as client:
        statuses = []
        for _ in range(rl.DEFLECTIONS_PER_ADDRESS.limit + 3):
            token = (await api_token(client, form.id))["form_token"]
            response = await client.post(
                f"/api/forms/{form.id}/deflections",
                json={"form_token": token, "article_id": article.id, "query": "x"},
            )
            statuses.append(response.status_code)
    assert statuses.count(204) == rl.DEFLECTIONS_PER_ADDRESS.limit
    assert_retry_after(response)
    assert response.headers["access-control-allow-origin"] == "*"
    [row] = [
        r
        for r in await served_core.forms.deflection_summary(tenant_id)
        if r.article_id == article.id
    ]
    assert row.opened == rl.DEFLECTIONS_PER_ADDRESS.limit


# ------------------------------------------------------------------ row 12: analytics
async def test_missed_searches_are_recorded_a_few_per_address(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant_id = served.tenants["acme"].id
    prefix = unique("zzqx")
    async with served.client("acme") as client:
        for i in range(300):
            found = await client.get(
                "/kb/search.json", params={"q": f"{prefix} {i}", "record": "1", "lang": "en"}
            )
            assert found.status_code == 200 and found.json()["results"] == []
    async with served.client("acme") as other:  # another address still records
        await other.get("/kb/en/search", params={"q": f"{prefix} other"})
    recorded = [
        m
        for m in await served_core.kb.missed_searches(tenant_id, limit=1000)
        if m.query.startswith(prefix)
    ]
    assert sum(m.count for m in recorded) == rl.MISSED_SEARCHES_PER_ADDRESS.limit + 1
    assert f"{prefix} other" in {m.query for m in recorded}


async def test_votes_count_once_per_address_and_a_flood_gets_429(
    served: Served, served_core: EmbeddedCore
) -> None:
    tenant_id = served.tenants["acme"].id
    slug = unique("vote-article-")
    article = await served_core.kb.save_article(
        tenant_id, ArticleDraft("en", slug, "Vote on me", "Was it helpful?")
    )
    url = f"/kb/en/articles/{slug}/feedback"
    async with served.client("acme", follow_redirects=False) as client:
        statuses = []
        for i in range(300):
            response = await client.post(url, data={"helpful": "no", "key": f"vote-key-{i:04d}"})
            statuses.append(response.status_code)
    assert statuses.count(303) == rl.FEEDBACK_PER_ADDRESS.limit  # answered as usual
    assert_retry_after(response)
    assert "Too many requests" in response.text  # the page says so, and when to try again
    async with served.client("acme") as other:
        sent = await other.post(
            url,
            data={"helpful": "yes", "key": "other-key-1"},
            headers={"Accept": "application/json"},
        )
        assert sent.status_code == 200
    [row] = [
        r for r in await served_core.kb.feedback_summary(tenant_id) if r.article_id == article.id
    ]
    assert (row.helpful, row.not_helpful) == (1, 1)
