"""The core's custom domains on SQLite and PostgreSQL: states, what is served, events, claims."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from portal.core.contract import Conflict, NotFound
from portal.core.embedded.core import EmbeddedCore
from portal.core.embedded.migrate import upgrade
from tests.conftest import BOTH_DATABASES, database


@pytest.fixture(params=BOTH_DATABASES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with database(request.param, tmp_path) as url:
        yield url


async def test_only_verified_domains_are_served(core):
    acme = await core.tenants.create_tenant("acme", "Acme", domains=("desk.acme.test",))
    added = await core.tenants.add_domain(acme.id, "Support.Acme.test", verified=False)
    assert (added.domain, added.status, added.dns_checked) == ("support.acme.test", "pending", True)
    assert added.checked_at is None
    with pytest.raises(NotFound):
        await core.tenants.get_tenant_by_domain("support.acme.test")
    assert (await core.tenants.get_tenant("acme")).domains == ("desk.acme.test",)

    verified = await core.tenants.set_domain_status(acme.id, "support.acme.test", "verified")
    assert verified.verified and verified.checked_at is not None
    assert (await core.tenants.get_tenant_by_domain("support.acme.test")).id == acme.id
    assert (await core.tenants.get_tenant("acme")).domains == (
        "desk.acme.test",
        "support.acme.test",
    )

    failed = await core.tenants.set_domain_status(
        acme.id, "support.acme.test", "failed", "wrong_target", "elsewhere.test"
    )
    assert (failed.status, failed.reason, failed.detail) == (
        "failed",
        "wrong_target",
        "elsewhere.test",
    )
    with pytest.raises(NotFound):
        await core.tenants.get_tenant_by_domain("support.acme.test")

    listed = await core.tenants.list_domains(acme.id)
    assert [(d.domain, d.status, d.dns_checked) for d in listed] == [
        ("desk.acme.test", "verified", False),  # the operator's: served as is
        ("support.acme.test", "failed", True),
    ]
    await core.tenants.remove_domain(acme.id, "support.acme.test")
    assert [d.domain for d in await core.tenants.list_domains(acme.id)] == ["desk.acme.test"]
    with pytest.raises(NotFound):
        await core.tenants.remove_domain(acme.id, "support.acme.test")


async def test_a_domain_belongs_to_one_tenant_and_only_it_may_change_it(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    globex = await core.tenants.create_tenant("globex", "Globex")
    await core.tenants.add_domain(acme.id, "support.acme.test", verified=False)
    with pytest.raises(Conflict):
        await core.tenants.add_domain(globex.id, "SUPPORT.acme.test", verified=False)
    with pytest.raises(NotFound):
        await core.tenants.set_domain_status(globex.id, "support.acme.test", "verified")
    with pytest.raises(NotFound):
        await core.tenants.remove_domain(globex.id, "support.acme.test")
    assert await core.tenants.list_domains(globex.id) == []


async def test_every_change_that_matters_is_heard_as_tenant_changed(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    events = core.events()
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # the subscription starts before the writes

    async def heard() -> tuple[str, object]:
        nonlocal waiting
        event = await asyncio.wait_for(waiting, 5)
        waiting = asyncio.ensure_future(anext(events))
        return event.type, event.data.get("domain")

    await core.tenants.add_domain(acme.id, "a.acme.test", verified=False)
    assert await heard() == ("tenant.changed", "a.acme.test")
    await core.tenants.set_domain_status(acme.id, "a.acme.test", "verified")
    assert await heard() == ("tenant.changed", "a.acme.test")
    # A re-check that finds the same state changes nothing anyone serves: no event...
    await core.tenants.set_domain_status(acme.id, "a.acme.test", "verified")
    # ...so the next event heard is the removal's.
    await core.tenants.remove_domain(acme.id, "a.acme.test")
    assert await heard() == ("tenant.changed", "a.acme.test")
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    await events.aclose()


async def test_due_domains_are_claimed_once_across_callers(core):
    acme = await core.tenants.create_tenant("acme", "Acme", domains=("desk.acme.test",))
    names = [f"d{i}.acme.test" for i in range(6)]
    for name in names:
        await core.tenants.add_domain(acme.id, name, verified=False)
    now = datetime.now(UTC)
    # Two processes asking at once get different domains, and never the operator's. (On
    # PostgreSQL they are two cores with their own connections, as two processes have; one
    # SQLite file is served by one process, where the claims are one writer's in turn.)
    postgres = core.database_url.startswith("postgresql")
    other = EmbeddedCore(core.database_url) if postgres else core
    try:
        first, second = await asyncio.gather(
            core.tenants.claim_domains_to_check(now, 4),
            other.tenants.claim_domains_to_check(now, 4),
        )
    finally:
        if other is not core:
            await other.close()
    claimed = [d.domain for d in first + second]
    assert len(claimed) == len(set(claimed))  # never one domain twice
    assert all(d.checked_at is not None for d in first + second)
    # A caller that lost a race for a row skips it: what is still due comes in the next round.
    rest = [d.domain for d in await core.tenants.claim_domains_to_check(now, 10)]
    assert sorted(claimed + rest) == sorted(names)
    # Claimed means checked now: not due again until the interval has passed.
    assert await core.tenants.claim_domains_to_check(now, 10) == []
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert len(await core.tenants.claim_domains_to_check(later, 10)) == len(names)


async def test_domains_registered_before_checks_stay_served(empty_database_url):
    """The migration keeps every existing domain verified, as the operator's, never re-checked."""
    core = EmbeddedCore(empty_database_url)
    try:
        await upgrade(core.engine, "0007")
        async with core.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO tenants (slug, name, logo_url, primary_color, default_locale,"
                    " settings, kb_revision, created_at)"
                    " VALUES ('acme', 'Acme', '', '#1f6feb', 'en', '{}', 0, :now)"
                ),
                {"now": datetime.now(UTC)},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO tenant_domains (tenant_id, domain, verified, created_at)"
                    " VALUES (1, 'desk.acme.test', :yes, :now)"
                ),
                {"yes": True, "now": datetime.now(UTC)},
            )
        await core.start()  # migrates to the head
        [domain] = await core.tenants.list_domains(1)
        assert (domain.status, domain.dns_checked, domain.reason) == ("verified", False, "")
        assert (await core.tenants.get_tenant_by_domain("desk.acme.test")).slug == "acme"
    finally:
        await core.close()
