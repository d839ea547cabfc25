"""Sign-in sessions and verified addresses in the embedded core, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from portal.core.contract import Session


def sid(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def later(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


async def test_a_session_lives_until_it_is_ended(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    made = await core.customers.create_session(acme.id, "agent", 7, sid("a"), later(hours=12))
    assert isinstance(made, Session)
    assert (made.id, made.tenant_id, made.kind, made.subject_id) == (sid("a"), acme.id, "agent", 7)
    assert made.expires_at.tzinfo is not None and made.created_at.tzinfo is not None
    assert await core.customers.get_session(acme.id, sid("a")) == made
    await core.customers.end_session(acme.id, sid("a"))
    assert await core.customers.get_session(acme.id, sid("a")) is None
    await core.customers.end_session(acme.id, sid("a"))  # ending it again is harmless


async def test_a_retried_create_stores_nothing_new(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    first = await core.customers.create_session(acme.id, "customer", 3, sid("r"), later(days=14))
    again = await core.customers.create_session(acme.id, "customer", 3, sid("r"), later(days=14))
    assert again == first
    assert await core.customers.end_sessions(acme.id, "customer", 3) == 1


async def test_sessions_belong_to_their_tenant(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    globex = await core.tenants.create_tenant("globex", "Globex")
    await core.customers.create_session(acme.id, "agent", 1, sid("x"), later(hours=1))
    assert await core.customers.get_session(globex.id, sid("x")) is None
    await core.customers.end_session(globex.id, sid("x"))  # another tenant cannot end it either
    assert await core.customers.get_session(acme.id, sid("x")) is not None
    assert await core.customers.end_sessions(globex.id, "agent", 1) == 0
    assert await core.customers.get_session(acme.id, sid("x")) is not None


async def test_an_expired_session_is_gone_and_pruned(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    await core.customers.create_session(acme.id, "agent", 1, sid("old"), later(seconds=-1))
    assert await core.customers.get_session(acme.id, sid("old")) is None
    # Making a session prunes expired rows now and then: a fresh core prunes on its first one.
    from portal.core.embedded.core import EmbeddedCore

    other = EmbeddedCore(core.database_url)
    await other.start()
    try:
        await other.customers.create_session(acme.id, "agent", 1, sid("new"), later(hours=1))
    finally:
        await other.close()
    from portal.core.embedded import schema as t

    async with core.engine.connect() as conn:
        ids = (await conn.execute(t.sessions.select().with_only_columns(t.sessions.c.id))).all()
    assert [row.id for row in ids] == [sid("new")]


async def test_ending_all_sessions_of_one_subject(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    for token in ("laptop", "phone"):
        await core.customers.create_session(acme.id, "agent", 1, sid(token), later(hours=1))
    await core.customers.create_session(acme.id, "agent", 2, sid("colleague"), later(hours=1))
    await core.customers.create_session(acme.id, "customer", 1, sid("customer-1"), later(hours=1))
    assert await core.customers.end_sessions(acme.id, "agent", 1) == 2
    assert await core.customers.get_session(acme.id, sid("laptop")) is None
    assert await core.customers.get_session(acme.id, sid("phone")) is None
    # Another agent, and the customer with the same number, keep theirs.
    assert await core.customers.get_session(acme.id, sid("colleague")) is not None
    assert await core.customers.get_session(acme.id, sid("customer-1")) is not None


async def test_only_known_kinds(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    with pytest.raises(ValueError):
        await core.customers.create_session(acme.id, "robot", 1, sid("k"), later(hours=1))


async def test_a_customer_address_is_verified_once(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    customer = await core.customers.ensure_customer(acme.id, "kim@example.com", "Kim")
    assert customer.email_verified_at is None
    await core.customers.verify_customer_email(acme.id, customer.id)
    verified = await core.customers.get_customer(acme.id, customer.id)
    assert verified.email_verified_at is not None
    await core.customers.verify_customer_email(acme.id, customer.id)
    again = await core.customers.get_customer(acme.id, customer.id)
    assert again.email_verified_at == verified.email_verified_at  # the first proof is kept
    # Another tenant's id does nothing.
    globex = await core.tenants.create_tenant("globex", "Globex")
    other = await core.customers.ensure_customer(globex.id, "kim@example.com")
    await core.customers.verify_customer_email(acme.id, other.id)
    assert (await core.customers.get_customer(globex.id, other.id)).email_verified_at is None
