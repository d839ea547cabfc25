"""Chat messages stored in batches (`post_chat_messages`), on SQLite and PostgreSQL."""

import itertools

import pytest

from portal.core.contract import Conflict, MessageDraft, NotFound
from portal.core.contract.chat import ChatPost
from portal.core.embedded.chat_rows import ROWS
from tests.core.test_ticket_writes import counted

_client_ids = itertools.count(1)


@pytest.fixture
async def acme(core):
    return await core.tenants.create_tenant("acme", "Acme")


async def start(core, tenant, key):
    return await core.chat.start_conversation(tenant.id, visitor_id=key, idempotency_key=key)


def post(tenant, conversation, body, *, client_id="", author="visitor", **kw):
    draft = MessageDraft(
        author_type=author,
        author_id=kw.pop("author_id", None),
        author_name="",
        body=body,
        client_id=client_id or f"c{next(_client_ids)}",
        **kw,
    )
    return ChatPost(tenant.id, conversation.id, draft)


async def test_a_batch_stores_each_message_once_in_order_with_its_conversation_after_it(core, acme):
    # More conversations than one statement moves, and two messages to one of them.
    conversations = [await start(core, acme, f"v{n}") for n in range(ROWS + 3)]
    first = conversations[0]
    posts = [post(acme, c, f"to {c.id}") for c in reversed(conversations)]
    posts.insert(1, post(acme, first, "  first\n again  "))
    outcomes = await core.chat.post_chat_messages(posts)

    assert [message.body for message, _ in outcomes] == [p.draft.body for p in posts]
    for (message, after), sent in zip(outcomes, posts, strict=True):
        assert message.conversation_id == sent.conversation_id
        stored = await core.chat.chat_messages(acme.id, sent.conversation_id)
        assert message in stored
        # The conversation as the batch left it: its last message's id, preview and time.
        assert after == await core.chat.get_conversation(acme.id, sent.conversation_id)
        assert after.last_message_id == stored[-1].id
        assert after.updated_at == stored[-1].created_at
    # One conversation's messages keep the order they were given in.
    bodies = [m.body for m in await core.chat.chat_messages(acme.id, first.id)]
    assert bodies == ["  first\n again  ", f"to {first.id}"]
    assert (await core.chat.get_conversation(acme.id, first.id)).last_message_preview == (
        f"to {first.id}"
    )


async def test_refused_messages_keep_no_other_message_from_being_stored(core, acme):
    mine = await start(core, acme, "v1")
    other = await core.tenants.create_tenant("other", "Other")
    theirs = await start(core, other, "v2")
    posts = [
        post(acme, mine, "hello"),
        post(acme, theirs, "intrusion"),  # another tenant's conversation
        post(acme, mine, "   "),  # nothing to say
        post(acme, mine, "note", internal=True),  # a visitor's internal note
        post(acme, mine, "still here"),
    ]
    outcomes = await core.chat.post_chat_messages(posts)

    assert isinstance(outcomes[1], NotFound)
    assert isinstance(outcomes[2], Conflict) and isinstance(outcomes[3], Conflict)
    stored = await core.chat.chat_messages(acme.id, mine.id)
    assert [m.body for m in stored] == ["hello", "still here"]
    assert [outcomes[0][0], outcomes[4][0]] == stored
    assert await core.chat.chat_messages(other.id, theirs.id) == []


async def test_a_resend_in_a_batch_stores_nothing_and_answers_with_the_first(core, acme):
    conversation = await start(core, acme, "v1")
    (first, after), *_ = await core.chat.post_chat_messages(
        [post(acme, conversation, "a", client_id="x")]
    )
    later = post(acme, conversation, "b")
    outcomes = await core.chat.post_chat_messages(
        [
            post(acme, conversation, "a (resent)", client_id="x"),
            later,
            post(acme, conversation, "a (again)", client_id="x"),
        ]
    )
    assert outcomes[0][0] == outcomes[2][0] == first
    assert outcomes[1][0].body == "b" and outcomes[1][0].id > first.id
    stored = await core.chat.chat_messages(acme.id, conversation.id)
    assert [m.body for m in stored] == ["a", "b"]
    # Twice in one batch (a client resending before its ack): stored once.
    twice = await core.chat.post_chat_messages(
        [post(acme, conversation, "c", client_id="y"), post(acme, conversation, "c", client_id="y")]
    )
    assert twice[0][0] == twice[1][0]
    assert [m.body for m in await core.chat.chat_messages(acme.id, conversation.id)] == [
        "a",
        "b",
        "c",
    ]


async def test_a_visitor_reopens_a_closed_chat_and_a_note_moves_only_the_time(core, acme):
    ann = await core.tenants.create_agent(acme.id, "ann@acme.com", "Ann", "x", "agent")
    closed = await start(core, acme, "v1")
    await core.chat.assign_conversation(acme.id, closed.id, ann.id)
    await core.chat.set_conversation_status(acme.id, closed.id, "closed")
    answered = await start(core, acme, "v2")
    await core.chat.set_conversation_status(acme.id, answered.id, "closed")
    noted = await start(core, acme, "v3")
    (said, _), *_ = await core.chat.post_chat_messages([post(acme, noted, "before the note")])

    outcomes = await core.chat.post_chat_messages(
        [
            post(acme, closed, "I am back"),
            post(acme, answered, "Bye", author="agent", author_id=ann.id),
            post(acme, noted, "VIP", author="agent", author_id=ann.id, internal=True),
        ]
    )
    (_, reopened), (_, still_closed), (note, after_note) = outcomes
    assert (reopened.status, reopened.assignee_name) == ("waiting", "Ann")
    assert still_closed.status == "closed"  # an agent's message does not reopen it
    assert (after_note.last_message_id, after_note.last_message_preview) == (said.id, said.body)
    assert after_note.updated_at == note.created_at


async def test_a_batch_is_one_insert_and_one_update_in_one_transaction(core, acme):
    conversations = [await start(core, acme, f"v{n}") for n in range(3)]
    await core.chat.post_chat_messages([post(acme, c, "warm") for c in conversations])
    async with counted(core) as seen:
        await core.chat.post_chat_messages([post(acme, c, "hello") for c in conversations])
    # PostgreSQL locks each conversation's row first; SQLite's one writer needs no lock.
    # PostgreSQL locks the conversations' rows first; SQLite's one writer needs no lock.
    locks = ["SELECT"] if core.engine.dialect.name != "sqlite" else []
    assert seen.statements == [*locks, "INSERT chat_messages", "UPDATE conversations"]
    assert seen.commits == 1
