"""New tenants: `portal create-tenant`, `portal tenants`, the operators' API, and the first
admin's one-time welcome link."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from portal import cli
from portal.settings import Settings
from tests.admin.test_admin import csrf_from, log_in
from tests.conftest import BASE_DOMAIN

PLATFORM_KEY = "platform-key-for-tests-0123456789abcdef"
PASSWORD = "a long enough password"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"),
        base_domain=BASE_DOMAIN,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        platform_key=PLATFORM_KEY,
    )


def platform(server, key: str | None = PLATFORM_KEY) -> httpx.AsyncClient:
    client = server.client(host=f"www.{BASE_DOMAIN}")
    if key is not None:
        client.headers["authorization"] = f"Bearer {key}"
    return client


async def create(server, slug: str, name: str, email: str) -> httpx.Response:
    async with platform(server) as client:
        return await client.post(
            "/_platform/tenants", json={"slug": slug, "name": name, "admin_email": email}
        )


async def welcome(server, url: str, password: str, again: str | None = None) -> httpx.Response:
    """Open the welcome link and choose `password`, as the admin's browser would."""
    parts = urlsplit(url)
    async with server.client(host=parts.netloc) as client:
        page = await client.get(parts.path)
        assert page.status_code == 200, page.text
        data = {"csrf_token": csrf_from(page.text), "password": password}
        data["password_again"] = password if again is None else again
        return await client.post(parts.path, data=data)


# ------------------------------------------------------------------ the operators' API
async def test_the_api_makes_a_tenant_whose_admin_signs_in_through_the_welcome_link(server):
    made = await create(server, "globex", "Globex", "Boss@Globex.Example.com")
    assert made.status_code == 201, made.text
    answer = made.json()
    assert answer["slug"] == "globex"
    assert answer["hosts"] == [f"globex.{BASE_DOMAIN}"]
    assert answer["admin_email"] == "boss@globex.example.com"
    link = urlsplit(answer["admin_welcome_url"])
    assert link.netloc.startswith(f"globex.{BASE_DOMAIN}")
    assert link.path.startswith("/admin/welcome/")

    chosen = await welcome(server, answer["admin_welcome_url"], PASSWORD)
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/admin/"
    async with server.client(host=f"globex.{BASE_DOMAIN}") as client:
        client.cookies = chosen.cookies
        assert (await client.get("/admin/")).status_code == 200
    # The password works on the sign-in page from now on; the link does not work twice.
    async with server.client(host=f"globex.{BASE_DOMAIN}") as client:
        assert (await log_in(client, "boss@globex.example.com", PASSWORD)).status_code == 303
    again = await welcome(server, answer["admin_welcome_url"], "another password 123")
    assert again.status_code == 410
    assert "used already" in again.text
    async with server.client(host=f"globex.{BASE_DOMAIN}") as client:
        refused = await log_in(client, "boss@globex.example.com", "another password 123")
        assert refused.status_code == 400

    async with platform(server) as client:
        listed = (await client.get("/_platform/tenants")).json()["tenants"]
    assert {"slug": "globex", "name": "Globex", "hosts": [f"globex.{BASE_DOMAIN}"]} in listed


async def test_two_tenants_made_by_the_api_keep_their_admins_apart(server):
    first = (await create(server, "first", "First", "admin@first.example.com")).json()
    second = (await create(server, "second", "Second", "admin@second.example.com")).json()
    signed_in = await welcome(server, first["admin_welcome_url"], PASSWORD)
    assert signed_in.status_code == 303
    # The first admin's session is worth nothing on the second tenant's host...
    async with server.client(host=f"second.{BASE_DOMAIN}") as client:
        client.cookies = signed_in.cookies
        response = await client.get("/admin/")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login")
    # ...and the first tenant's welcome link opens nothing on the second's host.
    path = urlsplit(first["admin_welcome_url"]).path
    async with server.client(host=f"second.{BASE_DOMAIN}") as client:
        assert (await client.get(path)).status_code == 404
    assert second["admin_welcome_url"] != first["admin_welcome_url"]


@pytest.mark.parametrize(
    "body, status, field, words",
    [
        (
            {"slug": "Bad Slug", "name": "X", "admin_email": "a@x.example.com"},
            422,
            "slug",
            "lower-case",
        ),
        ({"slug": "www", "name": "X", "admin_email": "a@x.example.com"}, 422, "slug", "reserved"),
        ({"slug": "acme", "name": "X", "admin_email": "a@x.example.com"}, 409, "slug", "taken"),
        ({"slug": "ok", "name": "", "admin_email": "a@x.example.com"}, 422, "name", "1 to 200"),
        ({"slug": "ok", "name": "A <b@c>", "admin_email": "a@x.example.com"}, 422, "name", "< @ >"),
        ({"slug": "ok", "name": "Ok", "admin_email": "not-an-email"}, 422, "admin_email", "not"),
    ],
)
async def test_bad_requests_are_refused_with_the_reason(server, body, status, field, words):
    await server.tenant("acme", "Acme")
    response = await create(server, body["slug"], body["name"], body["admin_email"])
    assert response.status_code == status, response.text
    assert words in response.json()["errors"][field]
    async with platform(server) as client:
        slugs = [t["slug"] for t in (await client.get("/_platform/tenants")).json()["tenants"]]
    assert slugs == ["acme"]  # nothing was made


async def test_a_body_that_is_not_a_json_object_is_a_400(server):
    async with platform(server) as client:
        broken = await client.post("/_platform/tenants", content=b"{not json")
        listed = await client.post("/_platform/tenants", json=["a", "list"])
    assert broken.status_code == 400 and "valid JSON" in broken.json()["error"]
    assert listed.status_code == 400


@pytest.mark.parametrize("key", [None, "wrong-key-0123456789-0123456789-0123", ""])
async def test_a_missing_or_wrong_key_is_a_401(server, key):
    async with platform(server, key) as client:
        listed = await client.get("/_platform/tenants")
        made = await client.post(
            "/_platform/tenants", json={"slug": "x", "name": "X", "admin_email": "a@x.example.com"}
        )
    for response in (listed, made):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert await server.core.tenants.list_tenants() == []


async def test_without_a_configured_key_the_api_is_not_there(settings, core):
    from portal.app import create_app
    from tests.conftest import serve_app

    switched_off = dataclasses.replace(settings, platform_key="")
    async with serve_app(create_app(switched_off, core=core), switched_off, core) as served:
        async with platform(served) as client:
            response = await client.get("/_platform/tenants")
    assert response.status_code == 404
    assert "switched off" in response.json()["error"]


# ------------------------------------------------------------------ the welcome link
async def test_the_welcome_form_wants_a_long_enough_password_typed_twice(server):
    made = (await create(server, "initech", "Initech", "admin@initech.example.com")).json()
    short = await welcome(server, made["admin_welcome_url"], "short")
    assert short.status_code == 400 and "at least 8 characters" in short.text
    differ = await welcome(server, made["admin_welcome_url"], PASSWORD, again=PASSWORD + "!")
    assert differ.status_code == 400 and "differ" in differ.text
    # Neither attempt spent the link.
    assert (await welcome(server, made["admin_welcome_url"], PASSWORD)).status_code == 303


async def test_a_forged_welcome_link_opens_nothing(server):
    await create(server, "initech", "Initech", "admin@initech.example.com")
    async with server.client(host=f"initech.{BASE_DOMAIN}") as client:
        response = await client.get("/admin/welcome/forged.token.value")
    assert response.status_code == 404
    assert "not valid or has expired" in response.text


# ------------------------------------------------------------------ the command line
@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("PORTAL_BASE_DOMAIN", "help.example.test")
    monkeypatch.setenv("PORTAL_PORT", "443")
    monkeypatch.setenv("PORTAL_PUBLIC_SCHEME", "https")
    return tmp_path / "cli"


def test_create_tenant_prints_the_admins_link_and_tenants_lists_it(environment, capsys):
    assert cli.main(["create-tenant", "--slug", "acme", "--name", "Acme Inc",
                     "--admin-email", "ops@acme.example.com"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "tenant acme created: Acme Inc" in printed
    link = next(line for line in printed.splitlines() if line.startswith("https://"))
    assert link.startswith("https://acme.help.example.test/admin/welcome/")
    assert cli.main(["tenants"]) == 0
    assert capsys.readouterr().out == "acme\tAcme Inc\tacme.help.example.test\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--slug=-acme", "--name", "A", "--admin-email", "a@a.example.com"],
            "--slug: Use 1 to 40",
        ),
        (
            ["--slug", "acme", "--name", "A", "--admin-email", "a@@a"],
            "--admin-email: 'a@@a' is not",
        ),
        (["--slug", "acme", "--name", "A\u202e", "--admin-email", "a@a.example.com"], "U+202E"),
    ],
)
def test_create_tenant_refuses_bad_input_saying_why(environment, capsys, args, message):
    assert cli.main(["create-tenant", *args]) == 1
    assert message in capsys.readouterr().err
    assert cli.main(["tenants"]) == 0
    assert capsys.readouterr().out == ""


def test_create_tenant_refuses_a_taken_slug(environment, capsys):
    args = ["create-tenant", "--slug", "acme", "--name", "A", "--admin-email", "a@a.example.com"]
    assert cli.main(args) == 0
    assert cli.main(args) == 1
    assert "--slug: 'acme' is taken" in capsys.readouterr().err
