"""Bearer keys: one tenant each, refused when missing, unknown or revoked; never another
tenant's data; and `portal core-key` to create, list and revoke them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from portal.cli import main
from portal.core.contract import TicketDraft
from tests.conftest import sqlite_database
from tests.core_api.conftest import CoreApi

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


def assert_unauthorized(response, detail_part: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized"
    assert detail_part in body["detail"]


async def test_a_missing_key_is_refused_with_a_problem(core_api: CoreApi) -> None:
    async with core_api.client() as client:
        client.headers.pop("Authorization")
        assert_unauthorized(await client.get("/core/v1/tickets"), "Authorization: Bearer")
        response = await client.get("/core/v1/tickets", headers={"Authorization": "Basic eDp5"})
        assert_unauthorized(response, "Authorization: Bearer")


@pytest.mark.parametrize(
    "key",
    ["nonsense", "core_", "core_abc", "core_0000000000000000.secret"],
)
async def test_an_unknown_key_is_refused(core_api: CoreApi, key: str) -> None:
    async with core_api.client(key) as client:
        assert_unauthorized(await client.get("/core/v1/tickets"), "unknown or revoked")


async def test_a_known_id_with_the_wrong_secret_is_refused(core_api: CoreApi) -> None:
    key_id = core_api.key.split(".")[0]
    async with core_api.client(f"{key_id}.not-the-secret") as client:
        assert_unauthorized(await client.get("/core/v1/tickets"), "unknown or revoked")


async def test_a_revoked_key_is_refused_at_once(core_api: CoreApi) -> None:
    record, key = await core_api.keys.create(core_api.tenant.id, "to revoke")
    async with core_api.client(key) as client:
        assert (await client.get("/core/v1/tenant")).json()["slug"] == "acme"
        await core_api.keys.revoke(record.id)
        assert_unauthorized(await client.get("/core/v1/tenant"), "unknown or revoked")
    async with core_api.client() as client:  # the tenant's other key still works
        assert (await client.get("/core/v1/tenant")).status_code == 200


async def test_a_key_sees_only_its_own_tenant(core_api: CoreApi) -> None:
    ticket = await core_api.core.tickets.create_ticket(
        core_api.tenant.id,
        TicketDraft(subject="Private", description="Acme's", requester_email="kim@acme.test"),
        uuid.uuid4().hex,
    )
    async with core_api.client() as mine, core_api.client(core_api.other_key) as theirs:
        assert (await mine.get(f"/core/v1/tickets/{ticket.id}")).json()["subject"] == "Private"
        response = await theirs.get(f"/core/v1/tickets/{ticket.id}")
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert "Private" not in response.text
        listed = (await theirs.get("/core/v1/tickets")).json()
        assert ticket.id not in [t["id"] for t in listed["tickets"]]
        reply = await theirs.post(
            f"/core/v1/tickets/{ticket.id}/replies",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            json={"author_type": "agent", "author_id": 1, "body": "hi", "internal": False},
        )
        assert reply.status_code == 404
        # Tenants by slug or domain: only the key's own.
        assert (await mine.get("/core/v1/tenants/acme")).json()["id"] == core_api.tenant.id
        assert (await theirs.get("/core/v1/tenants/acme")).status_code == 404
        by_domain = "/core/v1/tenants/by-domain/help.acme.test"
        assert (await mine.get(by_domain)).json()["slug"] == "acme"
        assert (await theirs.get(by_domain)).status_code == 404
        assert (await theirs.get("/core/v1/tenant")).json()["slug"] == "other"


def run_cli(args: list[str], data_dir: Path, database_url: str) -> int:
    import os

    env = {"PORTAL_DATA_DIR": str(data_dir), "PORTAL_DATABASE_URL": database_url}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return main(args)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


async def test_the_core_key_command_creates_lists_and_revokes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = sqlite_database(tmp_path)

    def cli(*args: str) -> tuple[int, str, str]:
        code = run_cli(list(args), tmp_path / "data", url)
        out, err = capsys.readouterr()
        return code, out, err

    async def in_thread(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, *args)  # the command runs a loop of its own

    assert (await in_thread("core-key", "--tenant", "nobody"))[0] == 1
    code, out, err = await in_thread(
        "create-tenant",
        "--slug",
        "kilo",
        "--name",
        "Kilo",
        "--admin-email",
        "admin@kilo.example.com",
    )
    assert code == 0, err
    code, out, err = await in_thread("core-key", "--tenant", "kilo", "--name", "edge-1")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("core_") and "shown once" in err
    key_id = key.removeprefix("core_").split(".")[0]
    code, out, _ = await in_thread("core-key", "--tenant", "kilo", "--list")
    assert key_id in out and "active" in out and "edge-1" in out
    assert key.split(".")[1] not in out  # the secret is never shown again
    code, out, _ = await in_thread("core-key", "--revoke", key_id)
    assert code == 0 and key_id in out
    code, out, _ = await in_thread("core-key", "--tenant", "kilo", "--list")
    assert "revoked" in out
    assert (await in_thread("core-key", "--revoke", "no-such-key"))[0] == 1
