"""Property-based checks of the live core API against its own OpenAPI document: no server error
for any input the document allows (or, in negative cases, that it does not), and every answer
conforms to the document."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from portal.core.api.app import create_core_app
from portal.core.api.keys import ApiKeys
from portal.core.contract import ArticleDraft, TicketDraft
from portal.core.embedded.core import EmbeddedCore
from portal.serving import server_config
from portal.settings import Settings
from tests.conftest import BASE_DOMAIN, sqlite_database

# Small, so the module stays within a few seconds; every run draws new examples.
MAX_EXAMPLES = 3


async def _prepare(database_url: str) -> str:
    """A tenant with a little of everything, and its key."""
    core = EmbeddedCore(database_url)
    await core.start()
    try:
        tenant = await core.tenants.create_tenant("acme", "Acme", domains=("help.acme.test",))
        await core.kb.save_article(
            tenant.id, ArticleDraft(language="en", slug="hello", title="Hello", body_md="Hi")
        )
        await core.tickets.create_ticket(
            tenant.id,
            TicketDraft(subject="S", description="D", requester_email="kim@example.com"),
            "seed",
        )
        _, key = await ApiKeys(core.engine).create(tenant.id, "schemathesis")
        return key
    finally:
        await core.close()


@pytest.fixture(scope="module")
def live_core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`portal core` on a loopback port, in a thread of its own: schemathesis calls it from
    synchronous tests, so it cannot share their (idle) event loop."""
    tmp_path: Path = tmp_path_factory.mktemp("schemathesis")
    settings_ = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=sqlite_database(tmp_path),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        access_log="0",
    )
    key = asyncio.run(_prepare(settings_.database_url))
    config = server_config(
        create_core_app(settings_),
        settings_,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        log_config=None,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="core-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the core did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(15)


def test_the_api_keeps_to_its_document(live_core: tuple[str, str]) -> None:
    url, key = live_core
    api = schemathesis.openapi.from_url(f"{url}/core/v1/openapi.json")
    auth = {"Authorization": f"Bearer {key}"}
    checked = 0
    statuses: Counter[int] = Counter()
    # Each operation on its own hypothesis run (schemathesis' pytest plugin would do the same).
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: schemathesis.Case) -> None:
            headers = dict(auth)
            if case.method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                headers["Idempotency-Key"] = uuid.uuid4().hex  # each case is a new request
            response = case.call_and_validate(
                base_url=url,
                headers=headers,
                checks=[not_a_server_error, response_schema_conformance],
            )
            statuses[response.status_code] += 1

        check()
        checked += 1
    assert checked > 85  # every operation of the table was tried, and the feed and webhooks
    assert 401 not in statuses  # every case got past the key, into the handlers
    assert statuses[200] + statuses[204] > checked  # and many were answered, not just refused
