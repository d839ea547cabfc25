"""`portal demo`: the demo tenant, an admin account and the demo articles, loaded once."""

from __future__ import annotations

import logging

from portal.core.contract import HelpdeskCore, NotFound
from portal.kb.importer import import_folder
from portal.resources import DEMO_ARTICLES_DIR
from portal.security import hash_password
from portal.settings import Settings

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_ADMIN_EMAIL = "admin@demo.test"
DEMO_ADMIN_PASSWORD = "demo-admin"
DEMO_CANNED = (
    ("hello", "Hi {{customer.name}}, this is {{agent.name}}. How can I help?"),
    ("bye", "Thanks for chatting with us, {{customer.name}}. Have a good day!"),
)


async def load_demo(core: HelpdeskCore, settings: Settings) -> None:
    """Create the demo tenant on 127.0.0.1 and localhost; an existing one is left as it is."""
    try:
        await core.get_tenant(DEMO_SLUG)
        print(f"demo tenant exists already; serving it on http://127.0.0.1:{settings.port}/")
        return
    except NotFound:
        pass
    tenant = await core.create_tenant(DEMO_SLUG, "Demo Co", domains=("127.0.0.1", "localhost"))
    await core.create_agent(
        tenant.id, DEMO_ADMIN_EMAIL, "Demo Admin", hash_password(DEMO_ADMIN_PASSWORD), "admin"
    )
    for shortcut, body in DEMO_CANNED:
        await core.save_canned_response(tenant.id, shortcut, body)
    report = await import_folder(core, tenant.id, DEMO_ARTICLES_DIR)
    for problem in report.errors:
        log.error("demo article: %s", problem)
    print(
        f"demo tenant created with {report.created} articles.\n"
        f"  help center: http://127.0.0.1:{settings.port}/kb/\n"
        f"  admin:       http://127.0.0.1:{settings.port}/admin/ "
        f"({DEMO_ADMIN_EMAIL} / {DEMO_ADMIN_PASSWORD})\n"
        f"  live chat:   http://127.0.0.1:{settings.port}/messenger "
        f"(answer it at /agent/chats)"
    )
