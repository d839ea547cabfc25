"""`CoreClient.send_once` against a real core API server: one attempt, the answer decoded, a
final 4xx raised as `Refused` with the problem's title and detail, a core that does not answer
as `CoreUnavailable`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from portal.core.remote.client import CoreClient, CoreUnavailable, Refused
from tests.outbox.conftest import Setup, core_setup

pytestmark = pytest.mark.asyncio(loop_scope="module")

TICKET = {
    "subject": "Printer",
    "description": "It jams.",
    "requester_email": "kim@example.com",
    "requester_name": "Kim",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setup(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    async with core_setup(tmp_path_factory.mktemp("send-once")) as made:
        yield made


@pytest_asyncio.fixture(loop_scope="module")
async def client(setup: Setup) -> AsyncIterator[CoreClient]:
    made = CoreClient(setup.core.url, setup.key, timeout=2.0)
    yield made
    await made.aclose()


async def test_a_write_is_answered_once_and_its_retry_replayed(client: CoreClient) -> None:
    key = uuid.uuid4().hex
    first = await client.send_once("POST", "/core/v1/tickets", json=TICKET, idempotency_key=key)
    again = await client.send_once("post", "/core/v1/tickets", json=TICKET, idempotency_key=key)
    assert first["subject"] == "Printer" and again["id"] == first["id"]


async def test_the_same_key_with_another_body_is_refused_for_good(client: CoreClient) -> None:
    key = uuid.uuid4().hex
    await client.send_once("POST", "/core/v1/tickets", json=TICKET, idempotency_key=key)
    with pytest.raises(Refused) as refused:
        await client.send_once(
            "POST", "/core/v1/tickets", json={**TICKET, "subject": "Other"}, idempotency_key=key
        )
    assert refused.value.status == 422
    assert refused.value.title and "different request" in refused.value.detail


async def test_a_reply_to_a_ticket_the_core_lacks_is_refused_as_not_found(
    client: CoreClient,
) -> None:
    with pytest.raises(Refused) as refused:
        await client.send_once(
            "POST",
            "/core/v1/tickets/999999/replies",
            json={"author_type": "customer", "author_id": 1, "body": "Hello", "internal": False},
            idempotency_key=uuid.uuid4().hex,
        )
    assert refused.value.status == 404, refused.value.detail


async def test_a_refusal_names_the_fields_that_are_wrong(client: CoreClient) -> None:
    with pytest.raises(Refused) as refused:
        await client.send_once(
            "POST",
            "/core/v1/tickets",
            json={**TICKET, "requester_email": 5},
            idempotency_key=uuid.uuid4().hex,
        )
    assert refused.value.status == 422 and "/body/requester_email" in refused.value.detail


async def test_a_core_that_does_not_answer_is_unavailable(setup: Setup, client: CoreClient) -> None:
    await setup.core.stop()  # the last test of the module: the fixture leaves a stopped core be
    with pytest.raises(CoreUnavailable) as unavailable:
        await client.send_once(
            "POST", "/core/v1/tickets", json=TICKET, idempotency_key=uuid.uuid4().hex
        )
    assert "did not answer" in str(unavailable.value)
    assert unavailable.value.retry_after is None
