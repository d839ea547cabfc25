"""Finding 8: the admin login resists password spraying, lock-outs and scrypt starvation.

Against a real `portal serve`: one address trying many emails meets a limit before any password
is hashed; wrong guesses from one address never lock the account for its owner elsewhere; and a
burst of attempts is refused at once beyond a small hashing queue while the service keeps
answering. The backoff's arithmetic is checked on `LoginGuard` with a clock the test moves.
"""

from __future__ import annotations

import asyncio
import html
import re

import httpx
import pytest

from portal.admin.auth import (
    ACCOUNT_FAILURES,
    ADDRESS_LIMIT,
    FREE_FAILURES,
    MAX_DELAY,
    LoginGuard,
)
from tests.security.conftest import ADMIN_PASSWORD, Served, fresh_ip

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def login_form(client: httpx.AsyncClient) -> dict[str, str]:
    """The login form's token (its nonce cookie stays in `client`)."""
    page = await client.get("/admin/login")
    assert page.status_code == 200
    return {"csrf_token": html.unescape(CSRF_RE.findall(page.text)[0])}


async def attempt(
    client: httpx.AsyncClient, form: dict[str, str], email: str, password: str, ip: str = ""
) -> httpx.Response:
    headers = {"x-forwarded-for": ip} if ip else None
    data = form | {"email": email, "password": password}
    return await client.post("/admin/login", data=data, headers=headers)


def retry_after(response: httpx.Response) -> int:
    return int(response.headers["retry-after"])


# ------------------------------------------------------------------ over HTTP
async def test_one_address_spraying_many_emails_meets_a_limit(served: Served):
    async with served.client("acme") as sprayer:
        form = await login_form(sprayer)
        answers = [
            await attempt(sprayer, form, f"user{n}@acme.test", "Winter2024!") for n in range(60)
        ]
    statuses = [a.status_code for a in answers]
    assert statuses == [400] * ADDRESS_LIMIT + [429] * (60 - ADDRESS_LIMIT)
    refused = answers[-1]
    assert retry_after(refused) > 0
    assert "Too many sign-in attempts from your network" in refused.text
    assert "portal_agent=" not in refused.headers.get("set-cookie", "")


async def test_successful_sign_ins_leave_the_address_allowance_alone(served: Served):
    # A team behind one office address signs in every morning: only failures count.
    ip = fresh_ip()
    for _ in range(ADDRESS_LIMIT + 5):
        async with served.client("acme", ip=ip) as colleague:
            form = await login_form(colleague)
            answer = await attempt(colleague, form, "agent@acme.test", ADMIN_PASSWORD)
            assert answer.status_code == 303, answer.text


async def test_the_address_limit_spans_tenants(served: Served):
    ip = fresh_ip()
    async with served.client("acme", ip=ip) as on_acme, served.client("globex", ip=ip) as on_globex:
        form = await login_form(on_acme)
        for n in range(ADDRESS_LIMIT):
            assert (await attempt(on_acme, form, f"u{n}@acme.test", "x")).status_code == 400
        form = await login_form(on_globex)
        refused = await attempt(on_globex, form, "admin@globex.test", ADMIN_PASSWORD)
    assert refused.status_code == 429 and retry_after(refused) > 0


async def test_wrong_guesses_from_one_address_do_not_lock_the_admin_out(served: Served):
    async with served.client("acme") as attacker:
        form = await login_form(attacker)
        for _ in range(FREE_FAILURES):
            answer = await attempt(attacker, form, "admin@acme.test", "guess")
            assert answer.status_code == 400
        # Further guesses back off: fired together, at most a few get through (each admitted
        # one doubles the wait after it), the rest are refused without hashing.
        burst = await asyncio.gather(
            *(attempt(attacker, form, "Admin@Acme.test", f"guess{n}") for n in range(10))
        )
    statuses = [a.status_code for a in burst]
    assert set(statuses) <= {400, 429} and statuses.count(429) >= 7
    refused = next(a for a in burst if a.status_code == 429)
    assert retry_after(refused) >= 1
    assert "Too many failed sign-in attempts for this email address" in refused.text

    # The admin, elsewhere, signs in at once.
    async with served.client("acme") as admin:
        form = await login_form(admin)
        answer = await attempt(admin, form, "admin@acme.test", ADMIN_PASSWORD)
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
        assert (await admin.get("/admin/")).status_code == 200


async def test_a_burst_beyond_the_hashing_queue_is_refused_at_once(served: Served):
    """Each scrypt takes tens of ms: 100 attempts at once must not queue up behind each other."""
    async with (
        served.client("acme") as admin,
        served.client("acme", limits=httpx.Limits(max_connections=200)) as crowd,
        served.client("acme") as sprayer,
    ):
        form = await login_form(admin)
        assert (await attempt(admin, form, "admin@acme.test", ADMIN_PASSWORD)).status_code == 303
        # An address that used up its attempts (they are refused before hashing, so they must
        # be 429 even while every hashing slot is taken, never 503).
        spray_form = await login_form(sprayer)
        for n in range(ADDRESS_LIMIT):
            await attempt(sprayer, spray_form, f"s{n}@acme.test", "x")

        crowd_form = await login_form(crowd)
        flood = [
            attempt(crowd, crowd_form, f"bot{n}@acme.test", "x", ip=fresh_ip()) for n in range(100)
        ]
        sprays = [attempt(sprayer, spray_form, f"t{n}@acme.test", "x") for n in range(10)]
        pages = [admin.get("/admin/") for _ in range(5)]
        answers = await asyncio.gather(*flood, *sprays, *pages)
        flooded, sprayed, served_pages = answers[:100], answers[100:110], answers[110:]

        statuses = [a.status_code for a in flooded]
        assert set(statuses) <= {400, 503}
        assert statuses.count(503) > 0, "every attempt waited for a hash"
        busy = next(a for a in flooded if a.status_code == 503)
        assert retry_after(busy) >= 1
        assert "Sign-in is busy right now" in busy.text
        assert [a.status_code for a in sprayed] == [429] * 10
        # Signed-in pages kept being served during the burst.
        assert [a.status_code for a in served_pages] == [200] * 5

        # Right after it, a legitimate sign-in goes through.
        async with served.client("acme") as someone:
            form = await login_form(someone)
            answer = await attempt(someone, form, "agent@acme.test", ADMIN_PASSWORD)
            assert answer.status_code == 303


# ------------------------------------------------------------------ the backoff's arithmetic
class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


ACCOUNT = (1, "admin@acme.test")


def fail(guard: LoginGuard, times: int, address: str = "198.51.100.1") -> None:
    for _ in range(times):
        assert guard.admit(ACCOUNT, address) == 0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guard(clock: Clock) -> LoginGuard:
    return LoginGuard(clock=clock)


def test_the_wait_doubles_from_one_second_up_to_the_cap(guard: LoginGuard, clock: Clock):
    fail(guard, FREE_FAILURES)
    waits = []
    for _ in range(12):
        waits.append(guard.admit(ACCOUNT, "198.51.100.1"))
        clock.now += waits[-1]
        fail(guard, 1)
    assert waits[:6] == [1, 2, 4, 8, 16, 32]
    assert max(waits) == MAX_DELAY and waits[-1] == MAX_DELAY


def test_a_right_password_resets_the_backoff(guard: LoginGuard, clock: Clock):
    fail(guard, FREE_FAILURES)
    assert guard.admit(ACCOUNT, "198.51.100.1") == 1
    clock.now += 1
    assert guard.admit(ACCOUNT, "198.51.100.1") == 0  # and this time the password is right
    guard.succeeded(ACCOUNT, "198.51.100.1")
    fail(guard, FREE_FAILURES)  # five free failures again


def test_failures_are_forgotten_after_a_quiet_quarter_hour(guard: LoginGuard, clock: Clock):
    fail(guard, FREE_FAILURES)
    assert guard.admit(ACCOUNT, "198.51.100.1") > 0
    clock.now += 15 * 60 + 1
    fail(guard, FREE_FAILURES)


def test_an_attempt_never_checked_is_not_held_against_the_account(guard: LoginGuard):
    fail(guard, FREE_FAILURES - 1)
    assert guard.admit(ACCOUNT, "198.51.100.1") == 0
    guard.not_checked(ACCOUNT, "198.51.100.1")  # hashing was busy
    fail(guard, 1)


def test_other_addresses_are_spaced_only_after_very_many_failures(guard: LoginGuard, clock: Clock):
    # A distributed guesser: every address stays within its free failures...
    for n in range(ACCOUNT_FAILURES // FREE_FAILURES):
        fail(guard, FREE_FAILURES, address=f"203.0.113.{n}")
    # ...so the account as a whole lets one attempt a second through, from anywhere.
    assert guard.admit(ACCOUNT, "192.0.2.1") == 0
    assert guard.admit(ACCOUNT, "192.0.2.2") == pytest.approx(1.0)
    clock.now += 1
    assert guard.admit(ACCOUNT, "192.0.2.2") == 0
    # Below that count an owner elsewhere is never delayed by others' failures.
    other = (1, "other@acme.test")
    for n in range(ACCOUNT_FAILURES // FREE_FAILURES - 1):
        for _ in range(FREE_FAILURES):
            assert guard.admit(other, f"203.0.113.{n}") == 0
    assert guard.admit(other, "192.0.2.1") == 0
    assert guard.admit(other, "192.0.2.2") == 0
