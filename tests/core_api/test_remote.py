"""The remote core against a real `portal core`: a customer's whole flow through the API gives
what the embedded core itself answers, errors arrive as the contract's, and a core that does
not answer is CoreUnavailable."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portal.core.contract import (
    ArticleDraft,
    Choice,
    Conflict,
    Feedback,
    Field,
    FormDraft,
    MessageDraft,
    NotFound,
    ReplyDraft,
    TicketDraft,
)
from portal.core.contract.chat import ChatPost
from portal.core.remote import CoreUnavailable, RemoteCore
from portal.core.remote.client import RetryPolicy
from tests.core_api.conftest import CoreApi

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def remote(core_api: CoreApi) -> AsyncIterator[RemoteCore]:
    core = RemoteCore(core_api.url, core_api.key, timeout=5)
    await core.start()
    yield core
    await core.close()


async def test_a_customer_flow_gives_what_the_embedded_core_gives(
    core_api: CoreApi, remote: RemoteCore
) -> None:
    local, tid = core_api.core, core_api.tenant.id
    assert remote.capabilities == local.capabilities

    # The tenant, by the host a visitor came on and by slug.
    tenant = await remote.tenants.get_tenant_by_domain("help.acme.test")
    assert tenant == await local.tenants.get_tenant_by_domain("help.acme.test")
    assert await remote.tenants.get_tenant("acme") == tenant
    assert await remote.tenants.list_tenants() == [tenant]

    # The contact form, and a ticket from it.
    department = await local.forms.create_department(tid, f"Billing {uuid.uuid4().hex[:6]}")
    form = await local.forms.save_form(
        tid,
        FormDraft(
            title="Contact us",
            fields=(
                Field("plan", "Plan", "choice", options=(Choice("pro", "Pro"),)),
                Field("order", "Order", "text", department_ids=(department.id,)),
            ),
        ),
    )
    assert await remote.forms.get_form(tid, form.id) == form
    assert await remote.forms.list_forms(tid) == await local.forms.list_forms(tid)
    assert await remote.forms.list_departments(tid) == await local.forms.list_departments(tid)
    key = uuid.uuid4().hex
    draft = TicketDraft(
        subject="Refund",
        description="Charged twice.",
        requester_email="kim@example.com",
        requester_name="Kim",
        department_id=department.id,
        custom_fields={"plan": "pro", "order": "A-1"},
    )
    ticket = await remote.tickets.create_ticket(tid, draft, key)
    assert ticket == await local.tickets.get_ticket(tid, ticket.id)
    assert await remote.tickets.create_ticket(tid, draft, key) == ticket  # a retry: one ticket
    customer = await remote.customers.find_customer(tid, "kim@example.com")
    assert customer == await local.customers.get_customer(tid, ticket.customer_id)
    mine = await remote.tickets.list_tickets(tid, customer_id=customer.id)
    assert mine == await local.tickets.list_tickets(tid, customer_id=customer.id)
    assert [t.id for t in mine.tickets] == [ticket.id]

    # A reply, the agent's answer, resolution and a rating.
    reply = await remote.tickets.add_reply(
        tid,
        ticket.id,
        ReplyDraft(author_type="customer", author_id=customer.id, body="Any news?", internal=False),
        uuid.uuid4().hex,
    )
    agent = await local.tenants.create_agent(tid, f"{uuid.uuid4().hex[:8]}@acme.example", "Ann", "")
    await remote.tickets.add_reply(
        tid,
        ticket.id,
        ReplyDraft(author_type="agent", author_id=agent.id, body="Refunded.", internal=False),
        uuid.uuid4().hex,
    )
    replies = await remote.tickets.list_replies(tid, ticket.id)
    assert replies == await local.tickets.list_replies(tid, ticket.id)
    assert [r.body for r in replies] == ["Charged twice.", "Any news?", "Refunded."]
    assert replies[1] == reply
    resolved = await remote.tickets.set_ticket_status(tid, ticket.id, "resolved", agent_id=agent.id)
    assert resolved == await local.tickets.get_ticket(tid, ticket.id)
    assert resolved.status == "resolved"
    assert await remote.tickets.get_rating(tid, ticket.id) is None
    rating = await remote.tickets.rate_ticket(tid, ticket.id, good=True, comment="Quick!")
    assert rating == await local.tickets.get_rating(tid, ticket.id)

    # A knowledge base article read, and the reader's feedback.
    article = await local.kb.save_article(
        tid, ArticleDraft(language="en", slug="refunds", title="Refunds", body_md="# Refunds")
    )
    assert await remote.kb.get_article_by_slug(tid, "en", "refunds") == article
    listed = await remote.kb.list_articles(tid, language="en")
    assert listed == await local.kb.list_articles(tid, language="en")
    changed = await remote.kb.articles_changed_since(tid, 0)
    assert changed == await local.kb.articles_changed_since(tid, 0)
    await remote.kb.record_feedback(tid, Feedback(article.id, helpful=True), uuid.uuid4().hex)
    assert await remote.kb.feedback_summary(tid) == await local.kb.feedback_summary(tid)

    # A chat: the conversation, a message (sent twice: stored once), a batch.
    conversation = await remote.chat.start_conversation(
        tid, visitor_id="v-1", name="Kim", subject="Hello", idempotency_key=uuid.uuid4().hex
    )
    message = MessageDraft(
        author_type="visitor", author_id=None, author_name="Kim", body="Hi!", client_id="c-1"
    )
    stored, after = await remote.chat.post_chat_message(tid, conversation.id, message)
    again, _ = await remote.chat.post_chat_message(tid, conversation.id, message)
    assert again.id == stored.id
    assert after == await local.chat.get_conversation(tid, conversation.id)
    second = MessageDraft(
        author_type="visitor", author_id=None, author_name="Kim", body="Anyone?", client_id="c-2"
    )
    outcomes = await remote.chat.post_chat_messages(
        [ChatPost(tid, conversation.id, second), ChatPost(tid, 99_999_999, second)]
    )
    assert not isinstance(outcomes[0], Exception) and outcomes[0][0].body == "Anyone?"
    assert isinstance(outcomes[1], NotFound)
    messages = await remote.chat.chat_messages(tid, conversation.id)
    assert messages == await local.chat.chat_messages(tid, conversation.id)
    assert [m.body for m in messages] == ["Hi!", "Anyone?"]


async def test_the_contract_errors_come_back_as_they_are(
    core_api: CoreApi, remote: RemoteCore
) -> None:
    tid = core_api.tenant.id
    with pytest.raises(NotFound):
        await remote.tickets.get_ticket(tid, 99_999_999)
    with pytest.raises(NotFound):  # another tenant: not this key's to see
        await remote.tickets.get_ticket(core_api.other.id, 1)
    with pytest.raises(NotFound):
        await remote.tenants.get_tenant("other")
    await remote.tenants.add_domain(tid, "dup.acme.example", verified=False)
    with pytest.raises(Conflict):
        await remote.tenants.add_domain(tid, "dup.acme.example", verified=False)
    with pytest.raises(ValueError):
        await remote.tickets.list_tickets(tid, limit=5000)


async def test_a_core_that_does_not_answer_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    core = RemoteCore(
        f"http://127.0.0.1:{port}", "core_x.y", retry=RetryPolicy(attempts=3, base_delay=0.01)
    )
    try:
        with pytest.raises(CoreUnavailable, match="did not answer"):
            await core.start()
    finally:
        await core.close()


async def test_the_edge_serves_pages_from_the_remote_core(
    core_api: CoreApi, remote: RemoteCore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from portal.app import create_app
    from portal.settings import Settings
    from tests.conftest import BASE_DOMAIN, serve_app

    await core_api.core.kb.save_article(
        core_api.tenant.id,
        ArticleDraft(language="en", slug="edge-page", title="Edge page", body_md="From afar."),
    )
    settings = Settings(
        data_dir=str(tmp_path_factory.mktemp("edge") / "data"),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )
    edge = create_app(settings, core=remote)
    async with serve_app(edge, settings, core_api.core) as served:
        async with served.client(host="help.acme.test") as client:
            page = await client.get("/kb/en/articles/edge-page")
            missing = await client.get("/kb/en/articles/no-such-page")
    assert page.status_code == 200 and "From afar." in page.text
    assert missing.status_code == 404


async def test_the_settings_choose_the_core() -> None:
    from portal.core.embedded.core import EmbeddedCore
    from portal.core.remote.select import core_from_settings
    from portal.settings import Settings, SettingsError

    remote = Settings(core_url="http://core.internal:8100", core_key="core_a.b")
    remote.validate()
    assert isinstance(core_from_settings(remote), RemoteCore)
    assert isinstance(
        core_from_settings(Settings(database_url="sqlite+aiosqlite://")), EmbeddedCore
    )
    with pytest.raises(SettingsError, match="both PORTAL_CORE_URL and PORTAL_CORE_KEY"):
        Settings(core_url="http://core.internal:8100").validate()
    with pytest.raises(SettingsError, match="PORTAL_CORE_TIMEOUT_S"):
        Settings(core_timeout_s="soon").validate()
