"""Errors are problem+json with the right status, never a 500 for what a client sent; the
OpenAPI document describes every operation."""

from __future__ import annotations

import uuid

import pytest

from portal.core.api.operations import NOT_EXPOSED, OPERATIONS
from tests.core_api.conftest import ON_BOTH_DATABASES, CoreApi

pytestmark = [pytest.mark.asyncio(loop_scope="module"), ON_BOTH_DATABASES]

PROBLEM = "application/problem+json"


def key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def test_validation_lists_each_field(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        response = await client.post(
            "/core/v1/tickets",
            json={"subject": 5, "requester_email": "kim@example.com", "priority": []},
            headers=key(),
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        pointers = {e["pointer"] for e in response.json()["errors"]}
        assert pointers == {"/body/subject", "/body/description", "/body/priority"}
        response = await client.get("/core/v1/tickets", params={"limit": "many", "offset": "-1"})
        assert response.status_code == 422
        pointers = {e["pointer"] for e in response.json()["errors"]}
        assert pointers == {"/query/limit", "/query/offset"}


async def test_malformed_json_is_400(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        response = await client.post("/core/v1/tickets", content=b"{nope", headers=key())
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"


async def test_unknown_paths_and_methods_are_problems(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        missing = await client.get("/core/v1/no-such-thing")
        wrong_method = await client.patch("/core/v1/tickets", headers=key())
        not_a_number = await client.get("/core/v1/tickets/abc")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"] == PROBLEM
    assert not_a_number.status_code == 404


async def test_values_the_database_cannot_hold_are_422_not_500(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        huge_id = await client.get(f"/core/v1/tickets/{10**30}")
        huge_nested = await client.post(
            "/core/v1/tickets",
            json={
                "subject": "s",
                "description": "d",
                "requester_email": "kim@example.com",
                "department_id": 10**30,
            },
            headers=key(),
        )
        bad_status = await client.put(
            "/core/v1/tickets/1/status", json={"status": "exploded"}, headers=key()
        )
    assert huge_id.status_code == 422
    assert huge_nested.status_code in (404, 422), huge_nested.text
    # The embedded core calls an unknown status a Conflict; the API keeps its word.
    assert bad_status.status_code in (404, 409, 422), bad_status.text


async def test_conflicts_are_409(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        first = await client.post(
            "/core/v1/domains", json={"domain": "taken.example.com"}, headers=key()
        )
        assert first.status_code == 200, first.text
        response = await client.post(
            "/core/v1/domains", json={"domain": "taken.example.com"}, headers=key()
        )
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM


async def test_capabilities(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        response = await client.get("/core/v1/capabilities")
    assert response.json() == {
        "organization_tickets": True,
        "ratings": True,
        "attachments": True,
        "chat": True,
    }


async def test_the_openapi_document_describes_every_operation(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        client.headers.pop("Authorization")
        document = (await client.get("/core/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearerKey"]["scheme"] == "bearer"
    schemas = document["components"]["schemas"]
    assert {"Ticket", "TicketDraft", "Problem", "Article", "Conversation"} <= set(schemas)
    operations = {
        op["operationId"]: (verb, op)
        for item in document["paths"].values()
        for verb, op in item.items()
    }
    assert {op.id for op in OPERATIONS} <= set(operations)
    assert not set(NOT_EXPOSED) & set(operations)
    for verb, op in operations.values():
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in headers) == (verb in ("post", "put", "patch", "delete"))
        problem = op["responses"]["default"]["content"]["application/problem+json"]
        assert problem["schema"]["$ref"] == "#/components/schemas/Problem"
        for param in op.get("parameters", []):
            assert param["name"] != "tenant_id"
