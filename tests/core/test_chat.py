"""The embedded core's messenger side, on SQLite and PostgreSQL."""

import asyncio
import itertools

import pytest
import sqlalchemy as sa

from portal.core.contract import AttachmentDraft, Conflict, MessageDraft, NotFound
from portal.core.embedded import schema

_client_ids = itertools.count(1)


@pytest.fixture
async def acme(core):
    return await core.tenants.create_tenant("acme", "Acme")


@pytest.fixture
async def ann(core, acme):
    return await core.tenants.create_agent(acme.id, "ann@acme.com", "Ann", "x", "agent")


async def start(core, tenant, key="k1", visitor="v1", **kw):
    return await core.chat.start_conversation(
        tenant.id, visitor_id=visitor, idempotency_key=key, **kw
    )


async def say(core, tenant, conversation, body, *, author="visitor", client_id="", **kw):
    """A message from the visitor (or `author`), with a fresh client id unless one is given."""
    return await core.chat.add_chat_message(
        tenant.id,
        conversation.id,
        MessageDraft(
            author_type=author,
            author_id=kw.pop("author_id", None),
            author_name=kw.pop("author_name", ""),
            body=body,
            client_id=client_id or f"c{next(_client_ids)}",
            **kw,
        ),
    )


async def event_types(events, until):
    """The types of the events that arrive, up to and including one of type `until`."""
    seen = []
    while not seen or seen[-1] != until:
        seen.append((await asyncio.wait_for(anext(events), 2)).type)
    return seen


async def test_starting_twice_with_one_key_gives_one_conversation(core, acme):
    first = await start(core, acme, subject="  Where is\n my order?  ")
    again = await start(core, acme, subject="something else")
    other = await start(core, acme, key="k2")
    assert again == first and other.id != first.id
    assert first.status == "waiting" and first.visitor_id == "v1"
    assert first.subject == "Where is my order?"
    assert first.customer_id is None and first.created_at.tzinfo is not None


async def test_starting_with_an_email_or_a_customer_links_the_customer(core, acme):
    by_email = await start(core, acme, email=" Pat@Example.com ", name="Pat")
    pat = await core.customers.find_customer(acme.id, "pat@example.com")
    assert (by_email.customer_id, by_email.visitor_email) == (pat.id, "pat@example.com")
    signed_in = await start(core, acme, key="k2", customer_id=pat.id)
    assert (signed_in.customer_id, signed_in.visitor_email, signed_in.visitor_name) == (
        pat.id,
        "pat@example.com",
        "Pat",
    )
    other = await core.tenants.create_tenant("other", "Other")
    with pytest.raises(NotFound):
        await start(core, other, key="k3", customer_id=pat.id)


async def test_a_resent_message_is_stored_once(core, acme):
    conversation = await start(core, acme)
    first = await say(core, acme, conversation, "Hello?", client_id="abc")
    again = await say(core, acme, conversation, "Hello? (resent)", client_id="abc")
    assert again == first and again.body == "Hello?"
    assert [m.id for m in await core.chat.chat_messages(acme.id, conversation.id)] == [first.id]
    # Client ids are per conversation: another conversation may use the same one.
    elsewhere = await say(core, acme, await start(core, acme, key="k2"), "Hi", client_id="abc")
    assert elsewhere.id != first.id
    with pytest.raises(Conflict):
        await core.chat.add_chat_message(
            acme.id,
            conversation.id,
            MessageDraft(
                author_type="visitor",
                author_id=None,
                author_name="",
                body="no client id",
                client_id="",
            ),
        )
    with pytest.raises(Conflict):
        await say(core, acme, conversation, "   ")


async def test_concurrent_resends_store_one_message(core, acme):
    conversation = await start(core, acme)
    sent = await asyncio.gather(
        *(say(core, acme, conversation, "Hi", client_id="same") for _ in range(5))
    )
    assert len({m.id for m in sent}) == 1
    assert len(await core.chat.chat_messages(acme.id, conversation.id)) == 1


async def test_messages_come_in_id_order_after_a_given_id(core, acme, ann):
    conversation = await start(core, acme)
    sent = [await say(core, acme, conversation, f"visitor {i}") for i in range(3)]
    sent.append(
        await say(
            core, acme, conversation, "agent", author="agent", author_id=ann.id, author_name="Ann"
        )
    )
    stored = await core.chat.chat_messages(acme.id, conversation.id)
    assert stored == sent and [m.id for m in stored] == sorted(m.id for m in stored)
    assert stored[-1].author_name == "Ann" and stored[-1].author_id == ann.id
    after = await core.chat.chat_messages(acme.id, conversation.id, after_id=sent[1].id)
    assert [m.body for m in after] == ["visitor 2", "agent"]
    assert len(await core.chat.chat_messages(acme.id, conversation.id, limit=2)) == 2
    fresh = await core.chat.get_conversation(acme.id, conversation.id)
    assert fresh.last_message_id == sent[-1].id and fresh.last_message_preview == "agent"
    assert fresh.updated_at >= conversation.updated_at


async def test_concurrent_senders_get_distinct_growing_ids(core, acme):
    conversation = await start(core, acme)
    sent = await asyncio.gather(*(say(core, acme, conversation, f"m{i}") for i in range(20)))
    stored = await core.chat.chat_messages(acme.id, conversation.id)
    assert sorted(m.id for m in sent) == [m.id for m in stored]
    assert len(stored) == 20


async def test_internal_notes_are_hidden_unless_asked_for(core, acme, ann):
    conversation = await start(core, acme)
    public = await say(core, acme, conversation, "Hi")
    note = await say(
        core, acme, conversation, "VIP customer", author="agent", author_id=ann.id, internal=True
    )
    assert note.internal
    assert await core.chat.chat_messages(acme.id, conversation.id) == [public]
    assert await core.chat.chat_messages(acme.id, conversation.id, include_internal=True) == [
        public,
        note,
    ]
    # A note is not the conversation's last (public) message.
    fresh = await core.chat.get_conversation(acme.id, conversation.id)
    assert (fresh.last_message_id, fresh.last_message_preview) == (public.id, "Hi")
    with pytest.raises(Conflict):
        await say(core, acme, conversation, "sneaky", internal=True)


async def test_a_posted_message_comes_with_the_conversation_after_it(core, acme, ann):
    conversation = await start(core, acme)
    await core.chat.assign_conversation(acme.id, conversation.id, ann.id)
    await core.chat.set_conversation_status(acme.id, conversation.id, "closed")

    def draft(body, client_id, **kw):
        return MessageDraft(
            author_type=kw.pop("author", "visitor"), author_id=kw.pop("author_id", None),
            author_name="", body=body, client_id=client_id, **kw,
        )  # fmt: skip

    message, after = await core.chat.post_chat_message(acme.id, conversation.id, draft("Hi", "a"))
    assert after == await core.chat.get_conversation(acme.id, conversation.id)
    assert (after.last_message_id, after.last_message_preview) == (message.id, "Hi")
    assert (after.status, after.assignee_name) == ("waiting", "Ann")  # reopened, still Ann's
    # A resend stores nothing and answers with the stored message and the conversation as is.
    again, same = await core.chat.post_chat_message(
        acme.id, conversation.id, draft("Hi (resent)", "a")
    )
    assert (again, same) == (message, after)
    note, noted = await core.chat.post_chat_message(
        acme.id, conversation.id, draft("VIP", "n", author="agent", author_id=ann.id, internal=True)
    )
    assert noted == await core.chat.get_conversation(acme.id, conversation.id)
    assert noted.last_message_id == message.id and noted.updated_at == note.created_at
    other = await core.tenants.create_tenant("other", "Other")
    with pytest.raises(NotFound):
        await core.chat.post_chat_message(other.id, conversation.id, draft("intrusion", "x"))


async def test_many_read_markers_are_moved_in_one_call(core, acme):
    one, two = await start(core, acme, key="k1"), await start(core, acme, key="k2")
    first, second = [await say(core, acme, one, body) for body in ("a", "b")]
    only = await say(core, acme, two, "c")
    await core.chat.mark_conversation_read(acme.id, one.id, reader="agent", message_id=second.id)
    other = await core.tenants.create_tenant("other", "Other")
    elsewhere = await start(core, other, key="k3")
    markers = await core.chat.mark_conversations_read(
        acme.id,
        reader="agent",
        up_to={one.id: first.id, two.id: only.id + 1000, elsewhere.id: 1, 10**9: 1},
    )
    # Never back, never past the newest message; others' and unknown conversations left out.
    assert markers == {one.id: second.id, two.id: only.id}
    fresh = await core.chat.get_conversation(acme.id, two.id)
    assert (fresh.agent_read_id, fresh.visitor_read_id) == (only.id, 0)
    assert (await core.chat.get_conversation(other.id, elsewhere.id)).agent_read_id == 0
    with pytest.raises(Conflict):
        await core.chat.mark_conversations_read(acme.id, reader="robot", up_to={one.id: 1})


async def test_read_markers_only_move_forward(core, acme):
    conversation = await start(core, acme)
    first, second = [await say(core, acme, conversation, body) for body in ("a", "b")]
    read = await core.chat.mark_conversation_read(
        acme.id, conversation.id, reader="agent", message_id=second.id
    )
    assert (read.agent_read_id, read.visitor_read_id) == (second.id, 0)
    read = await core.chat.mark_conversation_read(
        acme.id, conversation.id, reader="agent", message_id=first.id
    )
    assert read.agent_read_id == second.id
    # Never past the newest message, whatever a client claims.
    read = await core.chat.mark_conversation_read(
        acme.id, conversation.id, reader="visitor", message_id=second.id + 1000
    )
    assert read.visitor_read_id == second.id
    with pytest.raises(Conflict):
        await core.chat.mark_conversation_read(
            acme.id, conversation.id, reader="robot", message_id=first.id
        )


async def test_assign_and_status(core, acme, ann):
    conversation = await start(core, acme)
    accepted = await core.chat.assign_conversation(acme.id, conversation.id, ann.id)
    assert (accepted.status, accepted.assignee_agent_id, accepted.assignee_name) == (
        "open",
        ann.id,
        "Ann",
    )
    handed_back = await core.chat.assign_conversation(acme.id, conversation.id, None)
    assert (handed_back.status, handed_back.assignee_agent_id) == ("waiting", None)
    await core.chat.assign_conversation(acme.id, conversation.id, ann.id)
    closed = await core.chat.set_conversation_status(acme.id, conversation.id, "closed")
    assert closed.status == "closed"
    with pytest.raises(Conflict):
        await core.chat.set_conversation_status(acme.id, conversation.id, "resolved")
    # The visitor writing again reopens it for someone to answer; the agent stays on it.
    await say(core, acme, conversation, "One more thing")
    back = await core.chat.get_conversation(acme.id, conversation.id)
    assert (back.status, back.assignee_agent_id) == ("waiting", ann.id)
    other = await core.tenants.create_tenant("other", "Other")
    stranger = await core.tenants.create_agent(other.id, "sam@other.com", "Sam", "x")
    with pytest.raises(NotFound):
        await core.chat.assign_conversation(acme.id, conversation.id, stranger.id)


async def test_contact_details_link_a_customer(core, acme):
    conversation = await start(core, acme)
    named = await core.chat.update_conversation_contact(acme.id, conversation.id, name="Pat")
    assert (named.visitor_name, named.customer_id) == ("Pat", None)
    linked = await core.chat.update_conversation_contact(
        acme.id, conversation.id, email="PAT@example.com"
    )
    pat = await core.customers.find_customer(acme.id, "pat@example.com")
    assert (linked.visitor_email, linked.customer_id, linked.visitor_name) == (
        "pat@example.com",
        pat.id,
        "Pat",
    )
    assert pat.name == "Pat"


async def test_list_conversations_filters(core, acme, ann):
    pat = await core.customers.ensure_customer(acme.id, "pat@example.com")
    this_browser = await start(core, acme, key="k1", visitor="v1")
    other_device = await start(core, acme, key="k2", visitor="v2", customer_id=pat.id)
    stranger = await start(core, acme, key="k3", visitor="v3")
    nobody = await start(core, acme, key="k4", visitor="")
    await core.chat.assign_conversation(acme.id, stranger.id, ann.id)
    await say(core, acme, this_browser, "latest activity")

    def ids(conversations):
        return [c.id for c in conversations]

    assert ids(await core.chat.list_conversations(acme.id)) == [
        this_browser.id,
        stranger.id,
        nobody.id,
        other_device.id,
    ]
    assert ids(
        await core.chat.list_conversations(acme.id, visitor_id="v1", customer_id=pat.id)
    ) == [
        this_browser.id,
        other_device.id,
    ]
    assert ids(await core.chat.list_conversations(acme.id, customer_id=pat.id)) == [other_device.id]
    assert await core.chat.list_conversations(acme.id, visitor_id="") == []
    assert ids(await core.chat.list_conversations(acme.id, status="open")) == [stranger.id]
    assert ids(await core.chat.list_conversations(acme.id, assignee_agent_id=ann.id)) == [
        stranger.id
    ]
    assert len(await core.chat.list_conversations(acme.id, limit=2)) == 2
    older = await core.chat.list_conversations(acme.id, created_before=stranger.created_at)
    assert ids(older) == [this_browser.id, other_device.id]
    other = await core.tenants.create_tenant("other", "Other")
    assert await core.chat.list_conversations(other.id) == []


async def test_a_conversation_becomes_one_ticket(core, acme, ann):
    conversation = await start(core, acme, name="Pat")
    await say(core, acme, conversation, "My printer\nis on fire")
    await say(core, acme, conversation, "Hello Pat", author="agent", author_name="Ann")
    await say(core, acme, conversation, "call the fire brigade", author="agent", internal=True)
    with pytest.raises(Conflict, match="email"):
        await core.chat.conversation_to_ticket(acme.id, conversation.id)
    await core.chat.update_conversation_contact(acme.id, conversation.id, email="pat@example.com")
    events = core.events()
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)  # subscribed from here on
    ticket = await core.chat.conversation_to_ticket(acme.id, conversation.id)
    assert (await asyncio.wait_for(first, 2)).type == "ticket.created"
    assert await event_types(events, "chat.ticketed") == ["chat.ticketed"]
    assert (ticket.subject, ticket.requester_email) == ("My printer", "pat@example.com")
    [description] = await core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert description.body == "Pat: My printer\nis on fire\nAnn: Hello Pat"
    assert (await core.chat.get_conversation(acme.id, conversation.id)).ticket_id == ticket.id
    again = await core.chat.conversation_to_ticket(acme.id, conversation.id)
    assert again.id == ticket.id
    # No second ticket nor chat.ticketed: the next event is the one made here.
    await core.tenants.update_branding(acme.id, name="Acme", logo_url="", primary_color="#000000")
    assert await event_types(events, "tenant.changed") == ["tenant.changed"]
    await events.aclose()
    async with core.engine.connect() as conn:
        source = (
            await conn.execute(
                sa.select(schema.tickets.c.source).where(schema.tickets.c.id == ticket.id)
            )
        ).scalar()
    assert source == "chat"


async def test_the_conversation_subject_names_the_ticket(core, acme):
    conversation = await start(core, acme, email="pat@example.com", subject="Refund")
    ticket = await core.chat.conversation_to_ticket(acme.id, conversation.id)
    assert ticket.subject == "Refund"


async def test_visitor_messages_after_the_ticket_become_replies(core, acme, ann):
    conversation = await start(core, acme, email="pat@example.com", name="Pat")
    await say(core, acme, conversation, "Before")
    ticket = await core.chat.conversation_to_ticket(acme.id, conversation.id)
    later = await say(core, acme, conversation, "After", client_id="late")
    await say(core, acme, conversation, "After", client_id="late")  # a resend: no second reply
    await say(core, acme, conversation, "Agent talk", author="agent", author_id=ann.id)
    replies = await core.tickets.list_replies(acme.id, ticket.id, include_internal=True)
    assert [(r.author_type, r.body) for r in replies] == [
        ("customer", "Pat: Before"),
        ("customer", "After"),
    ]
    assert replies[1].author_name == "Pat" and later.body == "After"


async def test_no_visitor_message_is_lost_while_the_ticket_is_made(core, acme):
    conversation = await start(core, acme, email="pat@example.com", name="Pat")
    await say(core, acme, conversation, "m-first")
    bodies = [f"m{i}" for i in range(10)]
    ticket, *_ = await asyncio.gather(
        core.chat.conversation_to_ticket(acme.id, conversation.id),
        *(say(core, acme, conversation, body) for body in bodies),
    )
    replies = await core.tickets.list_replies(acme.id, ticket.id)
    written = "\n".join(r.body for r in replies)
    # Each message is in the transcript or in a reply of its own, exactly once.
    for body in ["m-first", *bodies]:
        assert written.count(body) == 1, body


async def test_attachments_ride_on_messages_and_onto_the_ticket(core, acme):
    conversation = await start(core, acme, email="pat@example.com")
    files = (
        AttachmentDraft("shot.png", "image/png", 10, "k/shot.png"),
        AttachmentDraft("log.txt", "text/plain", 20, "k/log.txt"),
    )
    message = await say(core, acme, conversation, "", attachments=files)
    assert [(a.filename, a.message_id, a.ticket_id) for a in message.attachments] == [
        ("shot.png", message.id, None),
        ("log.txt", message.id, None),
    ]
    [stored] = await core.chat.chat_messages(acme.id, conversation.id)
    assert stored.attachments == message.attachments
    fetched = await core.tickets.get_attachment(acme.id, message.attachments[0].id)
    assert fetched.message_id == message.id and fetched.storage_key == "k/shot.png"
    assert (await core.chat.get_conversation(acme.id, conversation.id)).last_message_preview == (
        "shot.png"
    )
    ticket = await core.chat.conversation_to_ticket(acme.id, conversation.id)
    await say(core, acme, conversation, "one more", attachments=files[:1])
    replies = await core.tickets.list_replies(acme.id, ticket.id)
    assert replies[0].body == "Visitor: [shot.png] [log.txt]"
    assert [a.filename for a in replies[0].attachments] == ["shot.png", "log.txt"]
    assert [a.storage_key for a in replies[1].attachments] == ["k/shot.png"]


async def test_canned_responses(core, acme):
    hello = await core.chat.save_canned_response(acme.id, " Hello ", "Hi {{customer.name}}!")
    bye = await core.chat.save_canned_response(acme.id, "bye", "Bye!")
    assert hello.shortcut == "hello"
    assert await core.chat.list_canned_responses(acme.id) == [bye, hello]
    changed = await core.chat.save_canned_response(acme.id, "hello", "Hey!", response_id=hello.id)
    assert changed.body == "Hey!" and changed.id == hello.id
    with pytest.raises(Conflict):
        await core.chat.save_canned_response(acme.id, "HELLO", "dup")
    with pytest.raises(Conflict):
        await core.chat.save_canned_response(acme.id, "hello", "dup", response_id=bye.id)
    with pytest.raises(Conflict):
        await core.chat.save_canned_response(acme.id, "  ", "empty")
    other = await core.tenants.create_tenant("other", "Other")
    assert (await core.chat.save_canned_response(other.id, "hello", "Hei")).shortcut == "hello"
    with pytest.raises(NotFound):
        await core.chat.save_canned_response(other.id, "x", "y", response_id=hello.id)
    with pytest.raises(NotFound):
        await core.chat.delete_canned_response(other.id, hello.id)
    await core.chat.delete_canned_response(acme.id, hello.id)
    assert await core.chat.list_canned_responses(acme.id) == [bye]


async def test_another_tenants_conversation_is_not_found(core, acme, ann):
    conversation = await start(core, acme, email="pat@example.com")
    await say(core, acme, conversation, "secret")
    other = await core.tenants.create_tenant("other", "Other")
    calls = [
        core.chat.get_conversation(other.id, conversation.id),
        core.chat.chat_messages(other.id, conversation.id),
        say(core, other, conversation, "intrusion"),
        core.chat.assign_conversation(other.id, conversation.id, None),
        core.chat.set_conversation_status(other.id, conversation.id, "closed"),
        core.chat.mark_conversation_read(other.id, conversation.id, reader="agent", message_id=1),
        core.chat.update_conversation_contact(other.id, conversation.id, name="Mallory"),
        core.chat.conversation_to_ticket(other.id, conversation.id),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call
    fresh = await core.chat.get_conversation(acme.id, conversation.id)
    assert (fresh.status, fresh.visitor_name, fresh.agent_read_id, fresh.ticket_id) == (
        "waiting",
        "",
        0,
        None,
    )
    assert [m.body for m in await core.chat.chat_messages(acme.id, conversation.id)] == ["secret"]


async def test_only_a_signed_in_customers_own_proved_email_counts_as_verified(core, acme):
    kim = await core.customers.ensure_customer(acme.id, "kim@example.com", "Kim")
    typed = await start(core, acme, key="typed", email="kim@example.com")
    unproved = await start(core, acme, key="unproved", customer_id=kim.id, email="kim@example.com")
    assert not typed.visitor_email_verified
    assert not unproved.visitor_email_verified

    await core.customers.verify_customer_email(acme.id, kim.id)
    own = await start(core, acme, key="own", customer_id=kim.id, email="kim@example.com")
    other = await start(core, acme, key="other", customer_id=kim.id, email="someone@example.com")
    assert own.visitor_email_verified
    assert not other.visitor_email_verified
    assert not (await core.chat.get_conversation(acme.id, typed.id)).visitor_email_verified
    listed = {c.id: c.visitor_email_verified for c in await core.chat.list_conversations(acme.id)}
    assert listed[own.id] and not listed[other.id]
