"""Customer portal throughput on one uvicorn worker, against a bare Starlette floor.

Prints `portal_ticket_list_rps`: signed-in ticket-list pages per second (session check, the
customer read from the core, one page of 25 tickets with its count, the template) for a customer
with 1,000 tickets, over a mix of first pages, later pages, open/closed filters and subject
searches. The server is `python -m portal.cli serve` in a subprocess on the embedded SQLite core,
on one core; wrk (16 connections) loads it from the other; the tickets are made through the core
contract beforehand. Then the floor (`_floor.BARE_ROUTES`: a Jinja page of the list's mean size,
rendered per request) gets the same load. Also printed, as `portal_ticket_list_NAME`:
  p50_ms / p99_ms / cpu_ms / busy   latency under that load, the server's CPU time per request,
                                    its CPU time / wall time
  bytes                             the mean page
  floor_rps / floor_p50_ms / floor_p99_ms / floor_cpu_ms / floor_busy   the same for the floor
  vs_floor / cpu_vs_floor           ours / floor: requests/s, and CPU per request
15 s measured after a 2 s warm-up (5 s after 1 s with --quick), for ours and for the floor.
Run: .venv/bin/python benchmarks/forms_portal.py [--quick] [--postgres]
  --postgres  our core on a new PostgreSQL database (PORTAL_BENCH_PG_DSN, default the local
              server as `postgres`); the floor is unchanged. PostgreSQL's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from _floor import BARE_ROUTES, floor_server
from _load import SERVER_CPU, Timing, figures, mean_size, pin_to_load_core, show, side_by_side, wrk
from _server import database, free_port, lag_file, served

from portal.core.contract import TicketDraft  # noqa: E402
from portal.core.embedded.core import EmbeddedCore  # noqa: E402
from portal.security import Signer  # noqa: E402
from portal.sessions.customer import SESSION_COOKIE, session_token  # noqa: E402
from portal.sessions.store import session_id  # noqa: E402

SECRET = secrets.token_urlsafe(48)
CUSTOMER = "busy.customer@example.com"
TOPICS = "invoice login export printer refund shipping password upgrade widget report".split()


async def seed_tickets(url: str, count: int) -> str:
    """A tenant on 127.0.0.1 and one customer with `count` tickets; returns a session cookie."""
    core = EmbeddedCore(url)
    await core.start()
    try:
        tenant = await core.tenants.create_tenant("bench", "Bench", domains=("127.0.0.1",))
        rng = random.Random(count)
        for i in range(count):
            subject = f"{rng.choice(TOPICS)} {rng.choice(TOPICS)} question {i}"
            draft = TicketDraft(subject, "Please help with " + subject, CUSTOMER)
            ticket = await core.tickets.create_ticket(tenant.id, draft, f"bench-{i}")
            if i % 3 == 0:
                await core.tickets.set_ticket_status(tenant.id, ticket.id, "resolved")
        customer = await core.customers.find_customer(tenant.id, CUSTOMER)
        token = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(days=1)
        await core.customers.create_session(
            tenant.id, "customer", customer.id, session_id(token), expires
        )
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


def portal_ticket_list(count: int, timing: Timing, postgres: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, database(Path(tmp), postgres) as url:
        data = Path(tmp)
        started = time.perf_counter()
        cookie = asyncio.run(seed_tickets(url, count))
        print(f"portal_seed_{count}_tickets: {time.perf_counter() - started:.1f} s", flush=True)
        port, floor_port = free_port(), free_port()
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
        paths = list_paths(count)
        floor_lag = data / "floor-lag.txt"  # the floor runs the same watch: the machine's stalls
        with (
            served(data, port, cpu=SERVER_CPU, database_url=url, PORTAL_SECRET_KEY=SECRET) as ours,
            floor_server(BARE_ROUTES, floor_port, cpu=SERVER_CPU, lag=floor_lag) as floor,
        ):
            size = mean_size(port, sorted(set(paths)), headers)
            floor_paths = [f"/page/{size}{path}" for path in paths]
            # The floor gets the same cookie: parsing a header is part of any request's cost.
            measured, theirs = side_by_side(
                partial(wrk, port, ours.pid, paths=paths, headers=headers, lag_file=lag_file(data)),
                partial(
                    wrk,
                    floor_port,
                    floor.pid,
                    paths=floor_paths,
                    headers=headers,
                    lag_file=floor_lag,
                ),
                timing,
            )
    show([("portal_ticket_list_bytes", size, "bytes")])
    show(figures("portal_ticket_list", measured, theirs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, under a minute")
    parser.add_argument("--postgres", action="store_true", help="our core on PostgreSQL")
    args = parser.parse_args()
    pin_to_load_core()
    timing = Timing(warm=1, run=5) if args.quick else Timing(warm=2, run=15)
    portal_ticket_list(1000, timing, args.postgres)


if __name__ == "__main__":
    main()
