"""The embedded core against the contract, on SQLite and PostgreSQL."""

import asyncio

import pytest

from portal.core.contract import (
    ArticleDraft,
    Conflict,
    Feedback,
    HelpdeskCore,
    NotFound,
    TicketDraft,
)


def test_embedded_core_implements_the_contract(core):
    assert isinstance(core, HelpdeskCore)


async def test_tenants_by_slug_and_domain(core):
    acme = await core.tenants.create_tenant("acme", "Acme", domains=("Support.Acme.com",))
    assert (await core.tenants.get_tenant("acme")).id == acme.id
    assert (await core.tenants.get_tenant_by_domain("support.acme.com")).id == acme.id
    with pytest.raises(NotFound):
        await core.tenants.get_tenant_by_domain("support.other.com")
    with pytest.raises(Conflict):
        await core.tenants.create_tenant("other", "Other", domains=("support.acme.com",))
    with pytest.raises(Conflict):
        await core.tenants.create_tenant("acme", "Acme again")


async def test_saving_an_article_twice_updates_it_and_advances_the_cursor(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    first = await core.kb.save_article(tenant.id, ArticleDraft("en", "reset", "Reset", "v1"))
    second = await core.kb.save_article(tenant.id, ArticleDraft("en", "reset", "Reset!", "v2"))
    assert second.id == first.id and second.revision > first.revision
    changed, cursor = await core.kb.articles_changed_since(tenant.id, 0)
    assert [a.title for a in changed] == ["Reset!"] and cursor == second.revision
    assert await core.kb.articles_changed_since(tenant.id, cursor) == ([], cursor)


async def test_articles_of_one_tenant_are_not_another_tenants(core):
    a = await core.tenants.create_tenant("a", "A")
    b = await core.tenants.create_tenant("b", "B")
    article = await core.kb.save_article(a.id, ArticleDraft("en", "x", "X", "body"))
    with pytest.raises(NotFound):
        await core.kb.get_article(b.id, article.id)
    assert await core.kb.list_articles(b.id) == []
    assert (await core.kb.articles_changed_since(b.id, 0))[0] == []


async def test_article_events_reach_subscribers(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    events = core.events()
    waiter = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    article = await core.kb.save_article(tenant.id, ArticleDraft("en", "x", "X", "body"))
    event = await asyncio.wait_for(waiter, 2)
    assert event.type == "article.changed" and event.data["article_id"] == article.id
    await events.aclose()


async def test_feedback_with_the_same_key_counts_once(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    article = await core.kb.save_article(tenant.id, ArticleDraft("en", "x", "X", "body"))
    for _ in range(2):
        await core.kb.record_feedback(tenant.id, Feedback(article.id, False), "key-1")
    await core.kb.record_feedback(tenant.id, Feedback(article.id, True), "key-2")
    [summary] = await core.kb.feedback_summary(tenant.id)
    assert (summary.helpful, summary.not_helpful) == (1, 1)


async def test_missed_searches_are_counted_per_normalized_query(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    await core.kb.record_missed_search(tenant.id, "Refund  Policy", "en")
    await core.kb.record_missed_search(tenant.id, "refund policy", "en")
    await core.kb.record_missed_search(tenant.id, "faktura", "nb")
    missed = await core.kb.missed_searches(tenant.id)
    assert [(m.query, m.language, m.count) for m in missed] == [
        ("refund policy", "en", 2),
        ("faktura", "nb", 1),
    ]


async def test_a_retried_ticket_is_one_ticket(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    draft = TicketDraft("Broken", "It broke", "Pat@Example.com", "Pat")
    results = await asyncio.gather(
        *[core.tickets.create_ticket(tenant.id, draft, "idem-1") for _ in range(3)]
    )
    assert len({t.id for t in results}) == 1
    other = await core.tickets.create_ticket(tenant.id, draft, "idem-2")
    assert other.number == results[0].number + 1


async def test_views_add_up(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    a = await core.kb.save_article(tenant.id, ArticleDraft("en", "a", "A", "body"))
    b = await core.kb.save_article(tenant.id, ArticleDraft("en", "b", "B", "body"))
    await core.kb.add_article_views(tenant.id, {b.id: 3, a.id: 1})
    await core.kb.add_article_views(tenant.id, {a.id: 1})
    assert [x.slug for x in await core.kb.most_viewed(tenant.id, "en")] == ["b", "a"]
