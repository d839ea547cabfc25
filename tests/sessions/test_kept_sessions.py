"""Sessions are read once and kept: signing out (here, everywhere, in another process) and
expiry still end them at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from portal.core.contract import EVENTS_RESUMED, Event
from portal.security import Signer
from portal.sessions.cache import SessionCache
from portal.sessions.customer import SESSION_COOKIE, session_token
from portal.sessions.store import session_id
from tests.conftest import (
    customer_cookie,
    staff_cookie,
)
from tests.customer.conftest import csrf_from
from tests.customer.test_kept_lists import Reads, subjects
from tests.kb.test_kept_pages import eventually
from tests.sessions.test_cache import told
from tests.two_processes import two_apps, two_cores

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PAT = "pat@example.com"


@pytest.fixture
async def acme(server):
    return await server.tenant("acme", "Acme")


@pytest.fixture
async def pat(server, acme):
    customer = await server.core.customers.ensure_customer(acme.id, PAT)
    await server.core.tickets.create_ticket(
        acme.id, _draft("Pat's question"), "pat-1"
    )  # something to list
    return customer


def _draft(subject: str):
    from portal.core.contract import TicketDraft

    return TicketDraft(subject, "Details", PAT)


async def cookie_of(server, customer) -> dict[str, str]:
    return {"cookie": await customer_cookie(server.core, SECRET, customer)}


async def test_a_session_is_read_once_then_kept(server, pat):
    pats = await cookie_of(server, pat)
    reads = Reads(server.core, "sessions")
    try:
        async with server.client() as client:
            for _ in range(3):
                assert (await client.get("/portal/tickets", headers=pats)).status_code == 200
        assert reads.count == 1
    finally:
        reads.close()


async def test_signing_out_ends_a_copied_cookie_at_once(server, pat):
    pats = await cookie_of(server, pat)
    async with server.client() as browser, server.client() as thief:
        page = await browser.get("/portal/tickets", headers=pats)
        assert (await thief.get("/portal/tickets", headers=pats)).status_code == 200  # kept
        out = await browser.post(
            "/portal/sign-out", headers=pats, data={"csrf_token": csrf_from(page.text)}
        )
        assert out.status_code == 303
        assert (await thief.get("/portal/tickets", headers=pats)).status_code == 303


async def test_signing_out_everywhere_ends_every_session_of_the_customer_at_once(server, pat):
    laptop, phone = await cookie_of(server, pat), await cookie_of(server, pat)
    sam = await server.core.customers.ensure_customer(pat.tenant_id, "sam@example.com")
    sams = await cookie_of(server, sam)
    async with server.client() as client:
        for headers in (laptop, phone, sams):
            assert (await client.get("/portal/tickets", headers=headers)).status_code == 200
        page = await client.get("/portal/tickets", headers=laptop)
        out = await client.post(
            "/portal/sign-out-everywhere", headers=laptop, data={"csrf_token": csrf_from(page.text)}
        )
        assert out.status_code == 303
        assert (await client.get("/portal/tickets", headers=phone)).status_code == 303
        assert (await client.get("/portal/tickets", headers=laptop)).status_code == 303
        assert (await client.get("/portal/tickets", headers=sams)).status_code == 200


async def test_a_kept_session_ends_when_it_expires(server, pat):
    token = "short-lived-session-token"
    expires = datetime.now(UTC) + timedelta(seconds=0.5)
    await server.core.customers.create_session(
        pat.tenant_id, "customer", pat.id, session_id(token), expires
    )
    headers = {"cookie": f"{SESSION_COOKIE}={session_token(Signer(SECRET), pat, token)}"}
    async with server.client() as client:
        assert (await client.get("/portal/tickets", headers=headers)).status_code == 200

        async def refused() -> bool:
            return (await client.get("/portal/tickets", headers=headers)).status_code == 303

        await eventually(refused, "the expiry")


async def test_an_agents_copied_cookie_stops_working_at_logout(server, acme):
    await server.agent(acme, "ada@acme.example", "pw-123456")
    ada = {"cookie": await staff_cookie(server.core, SECRET, acme, "ada@acme.example")}
    async with server.client() as browser, server.client() as thief:
        page = await browser.get("/admin/", headers=ada)
        assert page.status_code == 200
        assert (await thief.get("/admin/", headers=ada)).status_code == 200
        out = await browser.post(
            "/admin/logout", headers=ada, data={"csrf_token": csrf_from(page.text)}
        )
        assert out.status_code == 303
        assert (await thief.get("/admin/", headers=ada)).status_code == 303


async def test_the_core_tells_of_every_session_it_ends(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    events = core.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # the subscription starts before the ends
    await core.customers.end_session(tenant.id, "a" * 64)
    await core.customers.end_sessions(tenant.id, "customer", 7)
    heard = [await asyncio.wait_for(first, 5), await asyncio.wait_for(anext(events), 5)]
    await events.aclose()
    assert [(e.type, e.tenant_id, e.data) for e in heard] == [
        ("session.ended", tenant.id, {"session_id": "a" * 64}),
        ("sessions.ended", tenant.id, {"kind": "customer", "subject_id": 7}),
    ]


async def test_kept_sessions_are_dropped_by_the_events_that_end_them(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    pat = await core.customers.ensure_customer(tenant.id, PAT)
    expires = datetime.now(UTC) + timedelta(hours=1)
    ids = [session_id(f"token-{n}") for n in range(3)]
    for sid in ids:
        await core.customers.create_session(tenant.id, "customer", pat.id, sid, expires)
    cache, reads = SessionCache(), Reads(core, "sessions")
    try:
        for sid in ids * 2:
            assert (await cache.session(core, tenant.id, sid)).subject_id == pat.id
        assert reads.count == 3
        # Others' ends, of other tenants or kinds, drop nothing.
        await cache.follow(
            told(
                Event("session.ended", tenant.id + 1, {"session_id": ids[0]}),
                Event("sessions.ended", tenant.id, {"kind": "agent", "subject_id": pat.id}),
                Event("sessions.ended", tenant.id, {"kind": "customer", "subject_id": pat.id + 1}),
            )
        )
        for sid in ids:
            await cache.session(core, tenant.id, sid)
        assert reads.count == 3
        await core.customers.end_session(tenant.id, ids[0])  # in another process, say
        await cache.follow(told(Event("session.ended", tenant.id, {"session_id": ids[0]})))
        assert await cache.session(core, tenant.id, ids[0]) is None
        await core.customers.end_sessions(tenant.id, "customer", pat.id)
        await cache.follow(
            told(Event("sessions.ended", tenant.id, {"kind": "customer", "subject_id": pat.id}))
        )
        assert [await cache.session(core, tenant.id, sid) for sid in ids] == [None] * 3
    finally:
        reads.close()


async def test_after_a_hub_outage_no_kept_session_is_trusted(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    pat = await core.customers.ensure_customer(tenant.id, PAT)
    sid = session_id("token")
    expires = datetime.now(UTC) + timedelta(hours=1)
    await core.customers.create_session(tenant.id, "customer", pat.id, sid, expires)
    cache = SessionCache()
    await cache.session(core, tenant.id, sid)
    await core.customers.end_session(tenant.id, sid)  # its event went unheard
    await cache.follow(told(Event(EVENTS_RESUMED, 0)))
    assert await cache.session(core, tenant.id, sid) is None


# ------------------------------------------------------------------ two processes
async def test_sign_outs_and_ticket_changes_in_one_process_reach_the_other(tmp_path, redis):
    async with two_cores(tmp_path) as cores:
        tenant = await cores[0].tenants.create_tenant("acme", "Acme")
        pat = await cores[0].customers.ensure_customer(tenant.id, PAT)
        await cores[0].tickets.create_ticket(tenant.id, _draft("First question"), "k1")
        async with two_apps(tmp_path, cores, redis.url, SECRET) as (a, b):
            one, other = await cookie_of(a, pat), await cookie_of(a, pat)
            async with a.client() as on_a, b.client() as on_b:

                async def b_lists(headers) -> list[str]:
                    answer = await on_b.get("/portal/tickets", headers=headers)
                    return subjects(answer.text) if answer.status_code == 200 else []

                async def b_refuses(headers) -> bool:
                    return (await on_b.get("/portal/tickets", headers=headers)).status_code == 303

                assert await b_lists(one) == ["First question"]  # B keeps the session, the list
                assert await b_lists(other) == ["First question"]
                # A ticket made through A: B's kept list gives way to the new one.
                await cores[0].tickets.create_ticket(tenant.id, _draft("Second question"), "k2")
                await eventually(
                    lambda: _has(b_lists(one), "Second question"), "the ticket made on A"
                )
                # Signing out on A ends the session on B.
                page = await on_a.get("/portal/tickets", headers=one)
                out = await on_a.post(
                    "/portal/sign-out", headers=one, data={"csrf_token": csrf_from(page.text)}
                )
                assert out.status_code == 303
                await eventually(lambda: b_refuses(one), "the sign-out on A")
                assert await b_lists(other) == ["Second question", "First question"]
                # And signing out everywhere on A ends the other one on B as well.
                third = await cookie_of(a, pat)
                page = await on_a.get("/portal/tickets", headers=third)
                out = await on_a.post(
                    "/portal/sign-out-everywhere",
                    headers=third,
                    data={"csrf_token": csrf_from(page.text)},
                )
                assert out.status_code == 303
                await eventually(lambda: b_refuses(other), "signing out everywhere on A")


async def _has(listed, subject: str) -> bool:
    return subject in await listed
