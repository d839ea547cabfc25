"""Web forms and customer portal throughput on one uvicorn worker.

Prints `portal_ticket_list_rps`: signed-in ticket-list pages per second (session check, the
customer read from the core, one page of 25 tickets with its count, the template) for a customer
with 1,000 tickets, over a mix of first pages, later pages, open/closed filters and subject
searches. The server is `python -m portal.cli serve` in a subprocess on the embedded SQLite core;
the tickets are made through the core contract beforehand.
Run: .venv/bin/python benchmarks/forms_portal.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _server import free_port, http_load, served  # noqa: E402

from portal.core.contract import TicketDraft  # noqa: E402
from portal.core.embedded.core import EmbeddedCore  # noqa: E402
from portal.customer.session import SESSION_COOKIE, session_token  # noqa: E402
from portal.security import Signer  # noqa: E402
from portal.sessions import session_id  # noqa: E402

SECRET = secrets.token_urlsafe(48)
CUSTOMER = "busy.customer@example.com"
TOPICS = "invoice login export printer refund shipping password upgrade widget report".split()


async def seed_tickets(data: Path, count: int) -> str:
    """A tenant on 127.0.0.1 and one customer with `count` tickets; returns a session cookie."""
    core = EmbeddedCore(f"sqlite+aiosqlite:///{data}/portal.db")
    await core.start()
    try:
        tenant = await core.create_tenant("bench", "Bench", domains=("127.0.0.1",))
        rng = random.Random(count)
        for i in range(count):
            subject = f"{rng.choice(TOPICS)} {rng.choice(TOPICS)} question {i}"
            draft = TicketDraft(subject, "Please help with " + subject, CUSTOMER)
            ticket = await core.create_ticket(tenant.id, draft, f"bench-{i}")
            if i % 3 == 0:
                await core.set_ticket_status(tenant.id, ticket.id, "resolved")
        customer = await core.find_customer(tenant.id, CUSTOMER)
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(days=1)
        await core.create_session(tenant.id, "customer", customer.id, session_id(token), expires)
        return session_token(Signer(SECRET), customer, token)
    finally:
        await core.close()


def list_paths(count: int) -> list[str]:
    pages = max(1, count // 25)
    rng = random.Random(3)
    paths = ["/portal/tickets"] * 40  # most visits open the first page
    paths += [f"/portal/tickets?page={rng.randint(2, pages)}" for _ in range(20)]
    paths += ["/portal/tickets?state=open"] * 15 + ["/portal/tickets?state=closed"] * 10
    paths += [f"/portal/tickets?q={rng.choice(TOPICS)}" for _ in range(15)]
    return paths


async def portal_ticket_list(count: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        started = time.perf_counter()
        cookie = await seed_tickets(data, count)
        print(f"portal_seed_{count}_tickets: {time.perf_counter() - started:.1f} s")
        port = free_port()
        with served(data, port, PORTAL_SECRET_KEY=SECRET):
            headers = f"Cookie: {SESSION_COOKIE}={cookie}\r\n"
            paths = list_paths(count)
            await http_load(port, paths, 1, headers)  # warm up
            rps = await http_load(port, paths, seconds, headers)
            print(f"portal_ticket_list_rps: {rps:.0f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, under a minute")
    args = parser.parse_args()
    asyncio.run(portal_ticket_list(1000, 5 if args.quick else 15))


if __name__ == "__main__":
    main()
