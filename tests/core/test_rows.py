"""Contract dataclasses made from rows: the fast way must make what the constructor makes."""

from dataclasses import FrozenInstanceError, dataclass, field
from datetime import UTC, datetime

import pytest

from portal.core.contract import ChatMessage, Conversation
from portal.core.embedded.rows import made

NOW = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)


def test_a_conversation_made_by_filling_it_is_the_one_its_constructor_makes():
    values = {
        "id": 7,
        "tenant_id": 1,
        "status": "waiting",
        "created_at": NOW,
        "updated_at": NOW,
        "visitor_id": "v1",
        "customer_id": None,
        "assignee_agent_id": 3,
        "assignee_name": "Pat",
        "ticket_id": None,
        "visitor_name": "Sam",
        "visitor_email": "sam@example.com",
        "visitor_email_verified": True,
        "subject": "Hello?",
        "last_message_id": 12,
        "last_message_preview": "Hello?",
        "visitor_read_id": 12,
        "agent_read_id": 11,
    }
    filled, built = made(Conversation, values), Conversation(**values)
    assert filled == built and hash(filled) == hash(built) and repr(filled) == repr(built)
    with pytest.raises(FrozenInstanceError):
        filled.status = "open"  # type: ignore[misc]


def test_what_names_fewer_fields_or_runs_after_init_goes_through_the_constructor():
    partial = made(
        ChatMessage,
        {"id": 1, "conversation_id": 2, "author_type": "visitor", "body": "Hi", "client_id": "c",
         "created_at": NOW},
    )  # fmt: skip
    assert partial.attachments == () and partial.author_name == "" and partial.internal is False

    @dataclass(frozen=True)
    class Checked:
        tags: list[str] = field(default_factory=list)
        seen: bool = False

        def __post_init__(self) -> None:
            object.__setattr__(self, "seen", True)

    assert made(Checked, {"tags": ["a"], "seen": False}).seen is True
    with pytest.raises(TypeError):
        made(Conversation, {"id": 1, "not_a_field": 2})
