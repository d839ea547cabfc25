"""`HelpdeskCore` combines one object per domain: of one backend, or of several."""

import asyncio
from pathlib import Path

import pytest

from portal.core.contract import (
    DOMAINS,
    ArticleDraft,
    Capabilities,
    HelpdeskCore,
    MessageDraft,
    NotFound,
    ReplyDraft,
    TicketDraft,
    Unavailable,
)
from portal.core.embedded.core import EmbeddedCore
from tests.conftest import database


def test_the_embedded_core_has_one_object_per_domain_and_every_feature(core):
    for attribute, protocol in DOMAINS.items():
        assert isinstance(getattr(core, attribute), protocol), attribute
    assert core.capabilities == Capabilities()
    assert all(vars(core.capabilities).values())


def test_a_core_may_claim_fewer_features(database_url):
    core = EmbeddedCore(database_url, capabilities=Capabilities(chat=False))
    assert not core.capabilities.chat
    assert core.capabilities.ratings and core.capabilities.attachments
    assert not any(vars(Capabilities.none()).values())


async def test_an_unavailable_domain_answers_not_found():
    chat = Unavailable("chat")
    with pytest.raises(NotFound, match="no chat"):
        await chat.list_conversations(1)
    with pytest.raises(AttributeError):
        chat._private  # noqa: B018


async def test_domains_of_two_backends_make_one_core(database_url, tmp_path: Path):
    (tmp_path / "kb").mkdir()
    async with database("sqlite", tmp_path / "kb") as kb_url:
        main, other = EmbeddedCore(database_url), EmbeddedCore(kb_url)
        core = HelpdeskCore(
            tenants=main.tenants,
            kb=other.kb,  # the knowledge base lives elsewhere
            customers=main.customers,
            tickets=main.tickets,
            forms=main.forms,
            chat=main.chat,
            backends=[main, other],
        )
        await core.start()
        events = core.events()
        try:
            first = asyncio.ensure_future(anext(events))
            for _ in range(5):  # let the merged feed subscribe to both backends
                await asyncio.sleep(0)
            tenant = await core.tenants.create_tenant("acme", "Acme")
            await other.tenants.create_tenant("acme", "Acme")  # the KB backend's own tenant row
            await core.tickets.create_ticket(tenant.id, TicketDraft("Hi", "Help", "a@x.test"), "t")
            article = await core.kb.save_article(tenant.id, ArticleDraft("en", "a", "A", "body"))
            heard = [await asyncio.wait_for(first, 5)]
            heard += [await asyncio.wait_for(anext(events), 5) for _ in range(3)]
            # Each backend's new tenant, then the ticket and the article, from either backend.
            assert sorted(event.type for event in heard) == [
                "article.changed",
                "tenant.changed",
                "tenant.changed",
                "ticket.created",
            ]
            assert await other.kb.list_articles(tenant.id) == [article]
            assert await main.kb.list_articles(tenant.id) == []
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            await core.close()


async def test_drafts_carry_what_a_reply_and_a_message_need(core):
    tenant = await core.tenants.create_tenant("acme", "Acme")
    ticket = await core.tickets.create_ticket(tenant.id, TicketDraft("S", "D", "a@x.test"), "t")
    draft = ReplyDraft(
        author_type="customer", author_id=ticket.customer_id, body="More", internal=False
    )
    first = await core.tickets.add_reply(tenant.id, ticket.id, draft, "k")
    again = await core.tickets.add_reply(tenant.id, ticket.id, draft, "k")
    assert first == again and first.body == "More"
    conversation = await core.chat.start_conversation(
        tenant.id, visitor_id="v", idempotency_key="c"
    )
    message = MessageDraft(
        author_type="visitor", author_id=None, author_name="Vi", body="Hello", client_id="m1"
    )
    stored = await core.chat.add_chat_message(tenant.id, conversation.id, message)
    assert stored == await core.chat.add_chat_message(tenant.id, conversation.id, message)
    assert (stored.body, stored.author_name, stored.internal) == ("Hello", "Vi", False)
