"""Satisfaction: one rating per resolved ticket, changeable for 7 days, in the portal or by link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from portal.core.embedded import schema
from portal.customer.links import make_rating_link
from portal.security import Signer
from tests.customer.conftest import csrf_from, sign_in

ALICE = "alice@example.com"


@pytest.mark.both_databases
async def test_rate_once_and_change_it(portal):
    core, tenant = portal.core, portal.tenant
    ticket = await portal.ticket(ALICE, "Rate me")
    async with portal.client() as client:
        await sign_in(client, portal, ALICE)
        page = await client.get(f"/portal/tickets/{ticket.id}")
        assert '<section id="rating" class="rating" aria-labelledby="rating-heading" hidden>' in (
            page.text
        )
        url = f"/portal/tickets/{ticket.id}/rating"
        token = csrf_from(page.text)
        early = await client.post(url, data={"csrf_token": token, "good": "1"})
        assert early.status_code == 409
        assert "once it is resolved" in early.text
        assert await core.tickets.get_rating(tenant.id, ticket.id) is None

        await core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved")
        page = await client.get(f"/portal/tickets/{ticket.id}")
        assert 'aria-labelledby="rating-heading">' in page.text  # shown now
        rated = await client.post(
            url, data={"csrf_token": token, "good": "1", "comment": "Great help"}
        )
        assert rated.status_code == 303
        shown = await client.get(rated.headers["location"])
        assert "Your rating is saved" in shown.text
        assert "You rated this request:" in shown.text
        first = await core.tickets.get_rating(tenant.id, ticket.id)
        assert first is not None and first.good and first.comment == "Great help"

        changed = await client.post(url, data={"csrf_token": token, "good": "0", "comment": "Hmm"})
        assert changed.status_code == 303
        second = await core.tickets.get_rating(tenant.id, ticket.id)
        assert second is not None and not second.good and second.comment == "Hmm"
        assert second.created_at == first.created_at  # still one rating

        missing_choice = await client.post(url, data={"csrf_token": token})
        assert missing_choice.status_code == 400
        no_csrf = await client.post(url, data={"good": "1"})
        assert no_csrf.status_code == 403

        # Seven days after it was given, the core refuses a change and the page says so.
        async with core.engine.begin() as conn:
            await conn.execute(
                sa.update(schema.ratings)
                .where(schema.ratings.c.ticket_id == ticket.id)
                .values(created_at=datetime.now(UTC) - timedelta(days=8))
            )
        late = await client.post(url, data={"csrf_token": token, "good": "1"})
        assert late.status_code == 409
        assert "7 days" in late.text
        third = await core.tickets.get_rating(tenant.id, ticket.id)
        assert third is not None and not third.good


async def test_rating_link_without_session(portal):
    core, tenant = portal.core, portal.tenant
    ticket = await portal.ticket(ALICE, "Link rating")
    signer = Signer(portal.settings.secret_key)
    token = make_rating_link(signer, tenant.id, ticket.id, True)
    async with portal.client() as client:
        early = await client.post(f"/portal/rate/{token}", data={"good": "1"})
        assert early.status_code == 409
        assert "once it is resolved" in early.text
        await core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved")
        saved = await client.post(f"/portal/rate/{token}", data={"good": "1", "comment": "ok"})
        assert saved.status_code == 200
        cross = await client.post(
            f"/portal/rate/{token}", data={"good": "0"}, headers={"origin": "https://evil.test"}
        )
        assert cross.status_code == 403
    rating = await core.tickets.get_rating(tenant.id, ticket.id)
    assert rating is not None and rating.good


async def test_forged_or_foreign_rating_links(portal):
    core, tenant = portal.core, portal.tenant
    other = await core.tenants.create_tenant("globex", "Globex")
    ticket = await portal.ticket(ALICE, "Not yours")
    await core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved")
    signer = Signer(portal.settings.secret_key)
    foreign = make_rating_link(signer, other.id, ticket.id, True)
    wrong_purpose = signer.dumps("magic-link", {"t": tenant.id, "k": ticket.id, "g": True})
    async with portal.client() as client:
        for token in (foreign, wrong_purpose, "junk"):
            response = await client.get(f"/portal/rate/{token}")
            assert response.status_code == 404
            assert "Not yours" not in response.text
            assert (
                await client.post(f"/portal/rate/{token}", data={"good": "1"})
            ).status_code == 404
    assert await core.tickets.get_rating(tenant.id, ticket.id) is None
