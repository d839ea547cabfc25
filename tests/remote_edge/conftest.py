"""The edge on a remote core, as an operator runs them: `portal core` and `portal serve` as two
real processes, once per module.

The core's database is seeded first (a tenant with an agent, a contact form and an article),
then the command line makes the edge's core key (`portal core-key`) and registers the edge's
webhook endpoint (`portal core-webhook`), on the port the edge will listen on. Mail from the
edge goes to a real SMTP server; the core's access log is kept, to count what reached it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from portal.core.contract import Article, ArticleDraft, Form, FormDraft, Tenant
from portal.core.embedded.core import EmbeddedCore
from portal.security import hash_password
from tests.conftest import BASE_DOMAIN, Inbox, smtp_server
from tests.processes import PortalProcess, free_port, portal_command

SECRET = "remote-edge-tests-secret-key-0123456789-abcdef"
HOST = f"acme.{BASE_DOMAIN}"
AGENT_EMAIL = "agent@acme.test"
DEADLINE_S = 10.0


@dataclass
class Seeded:
    tenant: Tenant
    agent_id: int
    form: Form
    article: Article


@dataclass
class RemoteEdge:
    core: PortalProcess
    edge: PortalProcess
    key: str
    webhook_secret: str
    inbox: Inbox
    seeded: Seeded

    @property
    def tenant(self) -> Tenant:
        return self.seeded.tenant

    def edge_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A visitor's client: the edge, on the tenant's host."""
        return httpx.AsyncClient(
            base_url=self.edge.url, headers={"host": HOST}, timeout=10, **kwargs
        )

    def core_client(self) -> httpx.AsyncClient:
        """The core API with the tenant's key (what an agent's help desk would use)."""
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.AsyncClient(base_url=self.core.url, headers=headers, timeout=10)

    def core_requests(self, path_part: str) -> int:
        """How many requests whose line holds `path_part` the core logged (its access log)."""
        return sum(
            1
            for line in self.core.log_text().splitlines()
            if path_part in line and "HTTP/1.1" in line
        )


async def _seed(database_url: str, tenant_settings: dict[str, Any]) -> Seeded:
    core = EmbeddedCore(database_url)
    await core.start()
    try:
        tenant = await core.tenants.create_tenant("acme", "Acme")
        if tenant_settings:
            tenant = await core.tenants.update_tenant_settings(tenant.id, tenant_settings)
        agent = await core.tenants.create_agent(
            tenant.id, AGENT_EMAIL, "Ada Agent", hash_password("agent password 123"), "agent"
        )
        form = await core.forms.save_form(tenant.id, FormDraft("Contact us"))
        category = await core.kb.ensure_category(tenant.id, "en", "Getting started")
        article = await core.kb.save_article(
            tenant.id,
            ArticleDraft(
                "en", "reset-password", "How to reset your password", "Click *Forgot*.",
                category_id=category.id,
            ),
        )  # fmt: skip
        return Seeded(tenant, agent.id, form, article)
    finally:
        await core.close()


@contextmanager
def remote_edge_processes(
    root: Path,
    *,
    tenant_settings: dict[str, Any] | None = None,
    extra_edge_env: dict[str, str] | None = None,
) -> Iterator[RemoteEdge]:
    """The seeded core and its edge serving in `root`, until the block ends; `tenant_settings`
    and `extra_edge_env` are what a module needs beyond the defaults."""
    core_data, edge_data = root / "core", root / "edge"
    core_data.mkdir()
    edge_data.mkdir()
    core_env = {
        "PORTAL_DATA_DIR": str(core_data),
        "PORTAL_BASE_DOMAIN": BASE_DOMAIN,
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_ACCESS_LOG": "1",
        # A delivery that failed (the edge down) is tried again within a second or two.
        "PORTAL_WEBHOOK_RETRY_MAX_S": "2",
    }
    seeded = asyncio.run(
        _seed(f"sqlite+aiosqlite:///{core_data / 'portal.db'}", tenant_settings or {})
    )
    key = portal_command("core-key", "--tenant", "acme", "--name", "edge", env=core_env).strip()
    edge_port = free_port()
    registered = portal_command(
        "core-webhook",
        "--tenant",
        "acme",
        "--url",
        f"http://127.0.0.1:{edge_port}/_core/events",
        env=core_env,
    )
    webhook_secret = registered.strip().splitlines()[-1]
    assert webhook_secret.startswith("whsec_"), registered
    core_port = free_port()
    core = PortalProcess(
        ("core", "--host", "127.0.0.1", "--port", str(core_port)),
        core_port,
        core_env,
        root / "core.log",
        ready_path="/core/v1/openapi.json",
    )
    mail = smtp_server()
    inbox = next(mail)
    edge_env = {
        "PORTAL_DATA_DIR": str(edge_data),
        "PORTAL_PORT": str(edge_port),
        "PORTAL_BASE_DOMAIN": BASE_DOMAIN,
        "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_SMTP_HOST": "127.0.0.1",
        "PORTAL_SMTP_PORT": str(inbox.port),
        "PORTAL_MAIL_FROM": "help@portal.test",
        "PORTAL_ACCESS_LOG": "0",
        "PORTAL_CORE_URL": f"http://127.0.0.1:{core_port}",
        "PORTAL_CORE_KEY": key,
        "PORTAL_CORE_WEBHOOK_SECRET": webhook_secret,
        **(extra_edge_env or {}),
    }
    edge = PortalProcess(("serve",), edge_port, edge_env, root / "edge.log", ready_path="/readyz")
    try:
        core.start()
        edge.start()
        yield RemoteEdge(core, edge, key, webhook_secret, inbox, seeded)
    finally:
        edge.stop()
        core.stop()
        mail.close()


@pytest.fixture(scope="module")
def remote_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteEdge]:
    with remote_edge_processes(tmp_path_factory.mktemp("remote-edge")) as processes:
        yield processes
