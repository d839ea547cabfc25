"""`portal core-webhook --tenant SLUG --url URL`: registers an endpoint, prints its secret."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from portal.cli import main
from portal.core.embedded.core import EmbeddedCore
from portal.core.webhooks.endpoints import Endpoints
from tests.conftest import sqlite_database


def test_core_webhook_prints_the_secret_of_a_new_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    url = sqlite_database(tmp_path)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PORTAL_DATABASE_URL", url)

    async def a_tenant() -> None:
        core = EmbeddedCore(url)
        await core.start()
        await core.tenants.create_tenant("acme", "Acme")
        await core.close()

    asyncio.run(a_tenant())

    assert (
        main(["core-webhook", "--tenant", "acme", "--url", "https://edge.test/_core/events"]) == 0
    )
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["core-webhook", "--tenant", "nobody", "--url", "https://edge.test/"]) == 1
    assert "no tenant" in capsys.readouterr().err
    assert main(["core-webhook", "--tenant", "acme", "--url", "not a url"]) == 1
    assert "--url" in capsys.readouterr().err

    async def registered() -> list[tuple[str, str]]:
        core = EmbeddedCore(url)
        await core.start()
        try:
            return [(e.url, e.secret) for e in await Endpoints(core.engine).list()]
        finally:
            await core.close()

    assert asyncio.run(registered()) == [("https://edge.test/_core/events", secret)]
    assert secret.startswith("whsec_")
