"""Idempotency-Key on writes: required, bound to one request, 409 while the first runs, the first
answer replayed after, and one write however many times it is sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.core.api.idempotency import fingerprint
from portal.core.embedded import schema as t
from portal.core.embedded.rows import utcnow
from tests.core_api.conftest import ON_BOTH_DATABASES, CoreApi

pytestmark = [pytest.mark.asyncio(loop_scope="module"), ON_BOTH_DATABASES]

TICKETS = "/core/v1/tickets"


def draft(subject: str) -> dict[str, str]:
    return {"subject": subject, "description": "It broke.", "requester_email": "kim@example.com"}


async def tickets_titled(core_api: CoreApi, subject: str) -> int:
    page = await core_api.core.tickets.list_tickets(core_api.tenant.id, query=subject, limit=100)
    return sum(1 for ticket in page.tickets if ticket.subject == subject)


async def test_a_write_without_a_key_is_refused_and_does_nothing(core_api: CoreApi) -> None:
    subject = f"no key {uuid.uuid4().hex}"
    async with core_api.client() as client:
        response = await client.post(TICKETS, json=draft(subject))
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert "Idempotency-Key" in response.json()["detail"]
        for bad in (b"", b'""', b"x" * 256, "naïve".encode(), b"a b"):
            headers = {"Idempotency-Key": bad}
            response = await client.post(TICKETS, json=draft(subject), headers=headers)
            assert response.status_code == 400, bad
        response = await client.delete("/core/v1/forms/1")  # deletes need one too
        assert response.status_code == 400
    assert await tickets_titled(core_api, subject) == 0


async def test_a_retry_gets_the_first_answer_and_nothing_twice(core_api: CoreApi) -> None:
    subject = f"replayed {uuid.uuid4().hex}"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with core_api.client() as client:
        first = await client.post(TICKETS, json=draft(subject), headers=key)
        assert first.status_code == 200, first.text
        again = await client.post(TICKETS, json=draft(subject), headers=key)
        quoted = {"Idempotency-Key": f'"{key["Idempotency-Key"]}"'}  # structured-field form
        third = await client.post(TICKETS, json=draft(subject), headers=quoted)
    for retry in (again, third):
        assert retry.status_code == first.status_code
        assert retry.content == first.content
        assert retry.headers["content-type"] == "application/json"
        assert retry.headers["idempotent-replayed"] == "true"
    assert await tickets_titled(core_api, subject) == 1


async def test_a_final_error_is_replayed_too(core_api: CoreApi) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"author_type": "agent", "author_id": 1, "body": "hello", "internal": False}
    async with core_api.client() as client:
        first = await client.post(f"{TICKETS}/999999/replies", json=body, headers=key)
        again = await client.post(f"{TICKETS}/999999/replies", json=body, headers=key)
    assert first.status_code == again.status_code == 404
    assert first.content == again.content


async def test_the_same_key_for_another_request_is_422(core_api: CoreApi) -> None:
    subject = f"first {uuid.uuid4().hex}"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with core_api.client() as client:
        assert (await client.post(TICKETS, json=draft(subject), headers=key)).status_code == 200
        other_body = await client.post(TICKETS, json=draft(subject + " changed"), headers=key)
        other_path = await client.post(
            "/core/v1/kb/missed-searches", json={"query": "x", "language": "en"}, headers=key
        )
    for response in (other_body, other_path):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert "different request" in response.json()["detail"]
    assert await tickets_titled(core_api, subject + " changed") == 0


async def hold(core_api: CoreApi, key: str, body: bytes, *, lease: timedelta) -> None:
    """A record "running" for `key`, as a request still being processed leaves it."""
    now = utcnow()
    async with core_api.core.engine.begin() as conn:
        await conn.execute(
            t.core_idempotency.insert().values(
                tenant_id=core_api.tenant.id,
                key=key,
                fingerprint=fingerprint("POST", TICKETS, "", body),
                state="running",
                created_at=now,
                expires_at=now + lease,
            )
        )


async def test_a_retry_while_the_first_runs_is_409(core_api: CoreApi) -> None:
    subject = f"running {uuid.uuid4().hex}"
    key = uuid.uuid4().hex
    body = json.dumps(draft(subject)).encode()
    await hold(core_api, key, body, lease=timedelta(minutes=5))
    async with core_api.client() as client:
        response = await client.post(
            TICKETS,
            content=body,
            headers={"Idempotency-Key": key, "Content-Type": "application/json"},
        )
    assert response.status_code == 409
    assert response.headers["retry-after"] == "1"
    assert "still being processed" in response.json()["detail"]
    assert await tickets_titled(core_api, subject) == 0


async def test_a_record_left_running_by_a_dead_process_is_taken_over(core_api: CoreApi) -> None:
    subject = f"orphan {uuid.uuid4().hex}"
    key = uuid.uuid4().hex
    body = json.dumps(draft(subject)).encode()
    await hold(core_api, key, body, lease=timedelta(seconds=-1))  # its lease has run out
    async with core_api.client() as client:
        headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
        first = await client.post(TICKETS, content=body, headers=headers)
        again = await client.post(TICKETS, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert again.content == first.content
    assert await tickets_titled(core_api, subject) == 1


async def test_concurrent_requests_with_one_key_write_once(core_api: CoreApi) -> None:
    subject = f"raced {uuid.uuid4().hex}"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with core_api.client() as client:
        responses = await asyncio.gather(
            *(client.post(TICKETS, json=draft(subject), headers=key) for _ in range(8))
        )
    assert {r.status_code for r in responses} <= {200, 409}
    answers = {r.content for r in responses if r.status_code == 200}
    assert len(answers) == 1  # every 200 is the one write's answer
    assert await tickets_titled(core_api, subject) == 1


async def test_old_records_are_purged(core_api: CoreApi) -> None:
    store = core_api.app.state.idempotency
    key = uuid.uuid4().hex
    long_ago = utcnow() - timedelta(hours=49)
    async with core_api.core.engine.begin() as conn:
        await conn.execute(
            t.core_idempotency.insert().values(
                tenant_id=core_api.tenant.id,
                key=key,
                fingerprint="0" * 64,
                state="done",
                status=200,
                body="{}",
                content_type="application/json",
                created_at=long_ago,
                expires_at=long_ago,
            )
        )
    store._next_purge = None  # due now, rather than waiting ten minutes
    async with core_api.client() as client:
        response = await client.post(
            "/core/v1/kb/missed-searches",
            json={"query": "purge", "language": "en"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 204
    c = t.core_idempotency.c
    async with core_api.core.engine.connect() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).where(c.key == key))
    assert left == 0
