"""The admin area over real HTTP: sign-in, roles, tenants, CSRF, branding, categories, articles."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

ADMIN_EMAIL = "admin@acme.test"
ADMIN_PASSWORD = "correct horse battery staple"
BAD_LOGIN = "The email address or password is not correct."
TOKEN_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


def csrf_from(page: str) -> str:
    tokens = TOKEN_RE.findall(page)
    assert tokens, "the page has no form with a CSRF token"
    return html.unescape(tokens[0])


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Caches follow core events in the background: poll until `check` passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the change never showed")
        await asyncio.sleep(0.05)


async def log_in(
    client: httpx.AsyncClient, email: str, password: str, next_url: str | None = None
) -> httpx.Response:
    page = await client.get("/admin/login", params={"next": next_url} if next_url else None)
    assert page.status_code == 200
    data = {"csrf_token": csrf_from(page.text), "email": email, "password": password}
    if next_url is not None:
        data["next"] = next_url
    return await client.post("/admin/login", data=data)


async def form_token(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def error_text(page: str) -> str:
    match = re.search(r'<p class="errors" id="login-error" role="alert">(.*?)</p>', page, re.S)
    assert match, "no sign-in error on the page"
    return html.unescape(match.group(1))


@pytest.fixture
async def acme(server):
    tenant = await server.tenant("acme", "Acme")
    await server.agent(tenant, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    return tenant


@pytest.fixture
async def admin(server, acme):
    async with server.client() as client:
        response = await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert response.status_code == 303
        yield client


# ------------------------------------------------------------------ sign-in
@pytest.mark.both_databases
async def test_login_succeeds_and_sets_a_safe_session_cookie(server, acme):
    async with server.client() as client:
        response = await log_in(client, ADMIN_EMAIL.upper(), ADMIN_PASSWORD)
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/"
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("portal_agent=")
        )
        attributes = cookie.lower()
        assert "httponly" in attributes and "samesite=lax" in attributes
        assert "path=/;" in attributes or attributes.endswith("path=/")
        assert "max-age=43200" in attributes
        assert "secure" not in attributes  # development settings; production adds Secure
        dashboard = await client.get("/admin/")
        assert dashboard.status_code == 200
        assert "Searches with no results" in dashboard.text
        assert "Article feedback" in dashboard.text
        assert dashboard.headers["cache-control"] == "no-store"
        # Already signed in: the login page sends the agent on.
        again = await client.get("/admin/login", params={"next": "/admin/articles"})
        assert again.status_code == 303 and again.headers["location"] == "/admin/articles"


async def test_failed_login_says_the_same_for_unknown_email_and_wrong_password(server, acme):
    async with server.client() as client:
        wrong_password = await log_in(client, ADMIN_EMAIL, "not the password")
        unknown_email = await log_in(client, "nobody@acme.test", ADMIN_PASSWORD)
        for response, email in ((wrong_password, ADMIN_EMAIL), (unknown_email, "nobody@acme.test")):
            assert response.status_code == 400
            assert error_text(response.text) == BAD_LOGIN
            assert f'value="{email}"' in response.text  # the email is kept
            assert ADMIN_PASSWORD not in response.text and "not the password" not in response.text
            assert "portal_agent=" not in response.headers.get("set-cookie", "")
        assert (await client.get("/admin/")).status_code == 303


class FrozenClock:
    """The login guard's clock, moved only by the test: backoffs without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(server):
    """The app's login guard reads this clock from now on."""
    frozen = FrozenClock()
    server.service("login_guard").clock = frozen
    return frozen


async def test_failed_logins_back_off_rather_than_lock(server, acme, clock):
    """5 failures are free, then each further attempt waits 1 s, 2 s, 4 s ... after the last."""
    await server.agent(acme, "other@acme.test", ADMIN_PASSWORD)
    async with server.client() as client:
        for _ in range(5):
            assert (await log_in(client, ADMIN_EMAIL, "wrong")).status_code == 400
        blocked = await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)  # even the right password
        assert blocked.status_code == 429
        assert "Too many failed sign-in attempts" in error_text(blocked.text)
        assert blocked.headers["retry-after"] == "1"
        assert (await client.get("/admin/")).status_code == 303
        clock.now += 1.5
        assert (await log_in(client, ADMIN_EMAIL, "wrong")).status_code == 400  # the 6th failure
        assert (await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)).headers["retry-after"] == "2"
        clock.now += 2.5
        # The right password after the wait signs in, and starts the backoff afresh.
        assert (await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
    async with server.client() as client:
        # Unknown emails back off the same way, so the backoff reveals nothing.
        for _ in range(5):
            assert (await log_in(client, "ghost@acme.test", "wrong")).status_code == 400
        assert (await log_in(client, "ghost@acme.test", "wrong")).status_code == 429
        # Another email is not affected.
        assert (await log_in(client, "other@acme.test", ADMIN_PASSWORD)).status_code == 303


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/branding", "/admin/categories", "/admin/articles", "/admin/articles/new"],
)
async def test_admin_pages_redirect_to_login_when_signed_out(server, acme, path):
    async with server.client() as client:
        response = await client.get(path, params={"x": "1"})
        assert response.status_code == 303
        location = urlsplit(response.headers["location"])
        assert location.path == "/admin/login"
        assert parse_qs(location.query)["next"] == [f"{path}?x=1"]
        # After signing in the agent lands where they wanted to go.
        page = await client.get(response.headers["location"])
        assert f'name="next" value="{path}?x=1"' in page.text
        signed_in = await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD, next_url=f"{path}?x=1")
        assert signed_in.headers["location"] == f"{path}?x=1"


async def test_signed_out_post_changes_nothing(server, acme):
    async with server.client() as client:
        response = await client.post(
            "/admin/branding", data={"name": "Hacked", "logo_url": "", "primary_color": "#000000"}
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login?next=")
    assert (await server.core.tenants.get_tenant("acme")).name == "Acme"


async def test_agents_without_the_admin_role_get_403(server, acme):
    await server.agent(acme, "agent@acme.test", "agent password", role="agent")
    async with server.client() as client:
        assert (await log_in(client, "agent@acme.test", "agent password")).status_code == 303
        for path in ("/admin/", "/admin/branding", "/admin/categories", "/admin/articles"):
            response = await client.get(path)
            assert response.status_code == 403, path
            assert "Only administrators can use this page." in response.text
        token = csrf_from((await client.get("/admin/")).text)  # the sign-out form's token
        response = await client.post(
            "/admin/branding",
            data={"csrf_token": token, "name": "Agent", "logo_url": "", "primary_color": "#000000"},
        )
        assert response.status_code == 403
        # They can still sign out.
        out = await client.post("/admin/logout", data={"csrf_token": token})
        assert out.status_code == 303
    assert (await server.core.tenants.get_tenant("acme")).name == "Acme"


async def test_a_session_from_one_tenant_does_not_work_on_another(server, acme):
    other = await server.tenant("b", "Bravo")
    await server.agent(other, ADMIN_EMAIL, ADMIN_PASSWORD, role="admin")
    async with server.client() as client:
        assert (await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
        assert (await client.get("/admin/")).status_code == 200
        # The same cookie jar, sent to tenant B's host.
        on_b = await client.get("/admin/", headers={"host": "b.portal.test"})
        assert on_b.status_code == 303
        assert on_b.headers["location"].startswith("/admin/login")
        token = csrf_from((await client.get("/admin/branding")).text)
        post_b = await client.post(
            "/admin/branding",
            headers={"host": "b.portal.test"},
            data={
                "csrf_token": token,
                "name": "Hacked",
                "logo_url": "",
                "primary_color": "#000000",
            },
        )
        assert post_b.status_code == 303
    assert (await server.core.tenants.get_tenant("b")).name == "Bravo"


async def test_logout_ends_the_session(server, admin):
    token = await form_token(admin, "/admin/")
    response = await admin.post("/admin/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?signed_out=1"
    assert (await admin.get("/admin/")).status_code == 303
    assert "You are signed out." in (await admin.get("/admin/login?signed_out=1")).text


# ------------------------------------------------------------------ CSRF
async def test_posts_without_a_valid_csrf_token_are_refused(server, acme, admin):
    good = {"name": "Changed", "logo_url": "", "primary_color": "#123456"}
    missing = await admin.post("/admin/branding", data=good)
    assert missing.status_code == 403
    assert "Reload the page and try again." in missing.text
    forged = await admin.post("/admin/branding", data=good | {"csrf_token": "forged.token.value"})
    assert forged.status_code == 403
    # A real token, but from another agent's session, is no good either.
    async with server.client() as other:
        assert (await log_in(other, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 303
        foreign = await form_token(other, "/admin/branding")
    assert (
        await admin.post("/admin/branding", data=good | {"csrf_token": foreign})
    ).status_code == 403
    # A valid token sent from another site (Origin header) is refused as well.
    token = await form_token(admin, "/admin/branding")
    cross_site = await admin.post(
        "/admin/branding",
        data=good | {"csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    assert (await server.core.tenants.get_tenant("acme")).name == "Acme"
    # The same form with its token works.
    assert (
        await admin.post("/admin/branding", data=good | {"csrf_token": token})
    ).status_code == 303
    assert (await server.core.tenants.get_tenant("acme")).name == "Changed"


async def test_csrf_protects_other_forms(server, acme, admin):
    category = await server.core.kb.ensure_category(acme.id, "en", "Billing")
    response = await admin.post(f"/admin/categories/{category.id}/delete", data={})
    assert response.status_code == 403
    response = await admin.post("/admin/categories", data={"language": "en", "name": "New"})
    assert response.status_code == 403
    assert [c.name for c in await server.core.kb.list_categories(acme.id)] == ["Billing"]
    logout = await admin.post("/admin/logout", data={"csrf_token": "nope"})
    assert logout.status_code == 403
    assert (await admin.get("/admin/")).status_code == 200


async def test_the_login_form_has_its_own_csrf_token(server, acme):
    async with server.client() as client:
        no_token = await client.post(
            "/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert no_token.status_code == 403
        assert "Reload the page" in no_token.text
        page = await client.get("/admin/login")
        token = csrf_from(page.text)
        cross_site = await client.post(
            "/admin/login",
            data={"csrf_token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
            headers={"origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        assert (await client.get("/admin/")).status_code == 303
    async with server.client() as fresh:
        # The token belongs to the other browser's login cookie.
        stolen = await fresh.post(
            "/admin/login",
            data={"csrf_token": token, "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        )
        assert stolen.status_code == 403


# ------------------------------------------------------------------ redirects
@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example", "//evil.example/admin/", "/\\evil.example", "/kb/en/", "javascript:x"],
)
async def test_the_next_parameter_cannot_leave_the_admin_area(server, acme, next_url):
    async with server.client() as client:
        response = await log_in(client, ADMIN_EMAIL, ADMIN_PASSWORD, next_url=next_url)
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/"


# ------------------------------------------------------------------ branding
async def test_branding_with_a_bad_colour_is_refused_and_nothing_is_saved(server, admin):
    token = await form_token(admin, "/admin/branding")
    response = await admin.post(
        "/admin/branding",
        data={
            "csrf_token": token,
            "name": "New name",
            "logo_url": "javascript:alert(1)",
            "primary_color": "red;}body{display:none",
        },
    )
    assert response.status_code == 400
    assert 'id="f-primary_color-error"' in response.text
    assert 'aria-describedby="f-primary_color-error f-primary_color-hint"' in response.text
    assert "Enter a colour as # and six hexadecimal digits" in response.text
    assert "Enter an address that starts with https:// or http://" in response.text
    assert 'value="New name"' in response.text  # values are kept
    assert 'value="red;}body{display:none"' in response.text
    tenant = await server.core.tenants.get_tenant("acme")
    assert (tenant.name, tenant.logo_url, tenant.primary_color) == ("Acme", "", "#1f6feb")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 201),
        ("logo_url", "ftp://example.com/logo.png"),
        ("logo_url", "https://" + "a" * 1000),
        ("primary_color", "#12345"),
        ("primary_color", "#1234567"),
        ("primary_color", "#12345g"),
    ],
)
async def test_branding_field_rules(server, admin, field, value):
    data = {"name": "Acme", "logo_url": "", "primary_color": "#123456"} | {field: value}
    token = await form_token(admin, "/admin/branding")
    response = await admin.post("/admin/branding", data=data | {"csrf_token": token})
    assert response.status_code == 400
    assert f'id="f-{field}-error"' in response.text


async def test_saved_branding_shows_on_the_public_help_center(server, admin):
    token = await form_token(admin, "/admin/branding")
    response = await admin.post(
        "/admin/branding",
        data={
            "csrf_token": token,
            "name": "Acme & Support",  # escaped, not refused (unlike < > @ , ; ")
            "logo_url": "https://cdn.example.com/logo.png",
            "primary_color": "#AA3300",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/branding?saved=1"
    page = await admin.get(response.headers["location"])
    assert "The branding is saved." in page.text
    assert 'value="Acme &amp; Support"' in page.text

    async def public_page_shows_it() -> bool:
        kb = await admin.get("/kb/en/")
        return (
            kb.status_code == 200
            and "Acme &amp; Support" in kb.text
            and "--brand: #aa3300" in kb.text
            and 'src="https://cdn.example.com/logo.png"' in kb.text
        )

    await eventually(public_page_shows_it)


# ------------------------------------------------------------------ categories and articles
@pytest.mark.both_databases
async def test_categories_and_articles_through_the_forms(server, acme, admin):
    token = await form_token(admin, "/admin/categories")
    created = await admin.post(
        "/admin/categories", data={"csrf_token": token, "language": "en", "name": "Billing"}
    )
    assert created.status_code == 303
    assert created.headers["location"] == "/admin/categories?created=1"
    billing = await server.core.kb.get_category_by_slug(acme.id, "en", "billing")
    child = await admin.post(
        "/admin/categories",
        data={"csrf_token": token, "language": "en", "name": "Invoices", "parent_id": billing.id},
    )
    assert child.status_code == 303
    invoices = await server.core.kb.get_category_by_slug(acme.id, "en", "invoices")
    assert invoices.parent_id == billing.id
    listing = await admin.get("/admin/categories")
    assert "Billing › Invoices" in listing.text
    assert "The category is created." in (await admin.get(created.headers["location"])).text

    token = await form_token(admin, "/admin/articles/new")
    saved = await admin.post(
        "/admin/articles/new",
        data={
            "csrf_token": token,
            "title": "Pay an invoice",
            "slug": "",
            "language": "en",
            "category_id": invoices.id,
            "body_md": "Open **Invoices** and choose *Pay*.",
            "published": "1",
        },
    )
    assert saved.status_code == 303
    article = await server.core.kb.get_article_by_slug(acme.id, "en", "pay-an-invoice")
    assert saved.headers["location"] == f"/admin/articles/{article.id}?saved=1"
    assert article.category_id == invoices.id and article.published
    edit_page = await admin.get(saved.headers["location"])
    assert "The article is saved." in edit_page.text
    assert 'href="/kb/en/articles/pay-an-invoice"' in edit_page.text

    public = await admin.get("/kb/en/articles/pay-an-invoice")
    assert public.status_code == 200
    assert "Pay an invoice" in public.text and "<strong>Invoices</strong>" in public.text
    listing = await admin.get("/admin/articles")
    assert "Pay an invoice" in listing.text

    # Unpublishing takes the public page down.
    token = csrf_from(edit_page.text)
    unpublished = await admin.post(
        f"/admin/articles/{article.id}",
        data={
            "csrf_token": token,
            "title": "Pay an invoice",
            "slug": "pay-an-invoice",
            "language": "en",
            "category_id": invoices.id,
            "body_md": "Open **Invoices** and choose *Pay*.",
        },
    )
    assert unpublished.status_code == 303
    assert not (await server.core.kb.get_article(acme.id, article.id)).published

    async def public_page_is_gone() -> bool:
        return (await admin.get("/kb/en/articles/pay-an-invoice")).status_code == 404

    await eventually(public_page_is_gone)
    drafts = await admin.get("/admin/articles", params={"language": "en"})
    assert "Pay an invoice" in drafts.text and "Draft" in drafts.text
    assert "Pay an invoice" not in (await admin.get("/admin/articles?language=nb")).text


async def test_editing_a_category(server, acme, admin):
    top = await server.core.kb.ensure_category(acme.id, "en", "Account")
    child = await server.core.kb.ensure_category(acme.id, "en", "Passwords", parent_id=top.id)
    other_language = await server.core.kb.ensure_category(acme.id, "nb", "Konto")
    token = await form_token(admin, f"/admin/categories/{top.id}")
    # A category cannot move under its own child, nor under a category in another language.
    for parent in (child.id, other_language.id, top.id):
        response = await admin.post(
            f"/admin/categories/{top.id}",
            data={"csrf_token": token, "name": "Account", "parent_id": parent, "position": "0"},
        )
        assert response.status_code == 400
        assert 'id="f-parent_id-error"' in response.text
    bad_position = await admin.post(
        f"/admin/categories/{top.id}",
        data={"csrf_token": token, "name": "Account", "position": "first"},
    )
    assert bad_position.status_code == 400 and 'id="f-position-error"' in bad_position.text
    assert 'value="first"' in bad_position.text
    saved = await admin.post(
        f"/admin/categories/{top.id}",
        data={
            "csrf_token": token,
            "name": "Your account",
            "description": "Sign-in & profile",
            "parent_id": "",
            "position": "3",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/admin/categories/{top.id}?saved=1"
    updated = await server.core.kb.get_category(acme.id, top.id)
    assert (updated.name, updated.description, updated.position) == (
        "Your account",
        "Sign-in & profile",
        3,
    )
    assert (await admin.get("/admin/categories/999999")).status_code == 404
    assert (await admin.get("/admin/categories/99999999999999999999999")).status_code == 404
    assert (await admin.get("/admin/articles/99999999999999999999999")).status_code == 404


async def test_deleting_a_category_with_articles_is_a_conflict(server, acme, admin):
    await server.article(acme, "Change your email", "Go to settings.", category="Account")
    category = await server.core.kb.get_category_by_slug(acme.id, "en", "account")
    empty = await server.core.kb.ensure_category(acme.id, "en", "Empty")
    token = await form_token(admin, f"/admin/categories/{category.id}")
    refused = await admin.post(
        f"/admin/categories/{category.id}/delete", data={"csrf_token": token}
    )
    assert refused.status_code == 409
    assert "move or delete this category&#39;s articles first" in refused.text
    await server.core.kb.get_category(acme.id, category.id)  # still there
    deleted = await admin.post(f"/admin/categories/{empty.id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin/categories?deleted=1"
    assert [c.slug for c in await server.core.kb.list_categories(acme.id)] == ["account"]


async def test_article_form_errors_keep_the_values(server, acme, admin):
    nb_category = await server.core.kb.ensure_category(acme.id, "nb", "Konto")
    token = await form_token(admin, "/admin/articles/new")
    response = await admin.post(
        "/admin/articles/new",
        data={
            "csrf_token": token,
            "title": "",
            "slug": "not a slug!",
            "language": "en",
            "category_id": nb_category.id,
            "body_md": "Some <b>text</b>",
            "published": "1",
        },
    )
    assert response.status_code == 400
    for field in ("title", "slug", "category_id"):
        assert f'id="f-{field}-error"' in response.text, field
    assert 'aria-describedby="f-slug-error f-slug-hint"' in response.text
    assert 'value="not a slug!"' in response.text
    assert "Some &lt;b&gt;text&lt;/b&gt;" in response.text
    assert "checked" in response.text
    assert await server.core.kb.list_articles(acme.id, published_only=False) == []


async def test_a_slug_clash_is_an_error(server, acme, admin):
    await server.article(acme, "First", "The first body.", slug="first")
    await server.article(acme, "Second", "The second body.", slug="second")
    second = await server.core.kb.get_article_by_slug(acme.id, "en", "second")
    token = await form_token(admin, f"/admin/articles/{second.id}")
    edit = await admin.post(
        f"/admin/articles/{second.id}",
        data={
            "csrf_token": token,
            "title": "Second",
            "slug": "first",
            "language": "en",
            "body_md": "The second body.",
            "published": "1",
        },
    )
    assert edit.status_code == 400
    assert "Another article in this language uses this slug already." in edit.text
    assert 'value="first"' in edit.text
    assert (await server.core.kb.get_article(acme.id, second.id)).slug == "second"
    new = await admin.post(
        "/admin/articles/new",
        data={
            "csrf_token": token,
            "title": "First again",
            "slug": "first",
            "language": "en",
            "body_md": "Would overwrite the first article.",
        },
    )
    assert new.status_code == 400
    assert "Another article in this language uses this slug already." in new.text
    first = await server.core.kb.get_article_by_slug(acme.id, "en", "first")
    assert first.body_md == "The first body." and first.title == "First"
    # The same slug in another language is fine.
    other_language = await admin.post(
        "/admin/articles/new",
        data={
            "csrf_token": token,
            "title": "Første",
            "slug": "first",
            "language": "nb",
            "body_md": "Norsk tekst.",
        },
    )
    assert other_language.status_code == 303


async def test_admin_pages_escape_user_data(server, acme, admin):
    hostile = '<script>alert("x")</script>'
    await server.article(acme, hostile, "Body", slug="hostile", category=hostile)
    await server.core.kb.record_missed_search(acme.id, hostile, "en")
    for path in ("/admin/", "/admin/articles", "/admin/categories"):
        page = await admin.get(path)
        assert page.status_code == 200
        assert hostile not in page.text, path
        assert "&lt;script&gt;" in page.text, path


async def test_an_agent_without_admin_role_lands_on_the_ticket_inbox(server, acme):
    await server.agent(acme, "desk@acme.test", "desk password", role="agent")
    async with server.client() as client:
        response = await log_in(client, "desk@acme.test", "desk password")
        assert response.status_code == 303
        assert response.headers["location"] == "/agent/tickets"
        assert (await client.get("/agent/tickets")).status_code == 200
