"""The form's own page and its iframe variant over real HTTP: CSRF, PRG, honeypot, limits."""

from __future__ import annotations

import asyncio
import re

import pytest

from portal.forms.abuse import HONEYPOT

from .helpers import VALID, field_error, hidden, open_form, send_form


async def tickets(server, tenant):
    return (await server.core.tickets.list_tickets(tenant.id, limit=100)).tickets


def reference(page: str) -> str:
    match = re.search(r'<strong class="reference">(#\d+)</strong>', page)
    assert match, "no ticket reference on the page"
    return match.group(1)


async def test_page_sets_a_visit_cookie_and_is_not_frameable(server, acme, contact_form):
    async with server.client() as client:
        page = await client.get(f"/forms/{contact_form.id}")
        assert page.status_code == 200
        assert "<h1>Contact us</h1>" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
        cookie = page.headers["set-cookie"].lower()
        assert cookie.startswith("portal_form=")
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/forms" in cookie
        tokens = hidden(page.text)
        assert {"csrf_token", "form_token", "idempotency_key"} <= set(tokens)
        assert f'name="{HONEYPOT}"' in page.text
        assert "/static/forms/form.js" in page.text and "<script>" not in page.text
        # The same cookie is kept on the next visit.
        again = await client.get(f"/forms/{contact_form.id}")
        assert "set-cookie" not in again.headers


@pytest.mark.both_databases
async def test_submission_redirects_to_a_thank_you_page_with_the_reference(
    server, acme, contact_form
):
    async with server.client() as client:
        response = await send_form(client, contact_form.id)
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(f"/forms/{contact_form.id}/thanks?r=")
        thanks = await client.get(location)
        assert thanks.status_code == 200
        assert reference(thanks.text) == "#1"
        # A made-up thank-you link shows nothing.
        forged = await client.get(f"/forms/{contact_form.id}/thanks", params={"r": "x.y.z"})
        assert forged.status_code == 404
    [ticket] = await tickets(server, acme)
    assert ticket.subject == VALID["subject"]
    assert ticket.priority == "high"
    assert ticket.requester_email == "kari@example.com"
    assert ticket.requester_name == "Kari Nordmann"
    assert ticket.kind == "ticket"
    [reply] = await server.core.tickets.list_replies(acme.id, ticket.id)
    assert reply.body == VALID["description"]


async def test_csrf_missing_forged_or_from_another_site_is_refused(server, acme, contact_form):
    async with server.client() as client:
        tokens = await open_form(client, contact_form.id)
        without = {k: v for k, v in tokens.items() if k != "csrf_token"}
        missing = await send_form(client, contact_form.id, tokens=without)
        assert missing.status_code == 403
        assert "was not sent" in missing.text
        assert 'value="The printer is on fire"' in missing.text  # what was typed is kept
        forged = await send_form(
            client, contact_form.id, tokens={**tokens, "csrf_token": tokens["csrf_token"] + "x"}
        )
        assert forged.status_code == 403
        cross_site = await send_form(
            client, contact_form.id, tokens=tokens, headers={"origin": "https://evil.example"}
        )
        assert cross_site.status_code == 403
    # A valid token with another visitor's cookie (here: none at all) is refused too.
    async with server.client() as stranger:
        stolen = await send_form(stranger, contact_form.id, tokens=tokens)
        assert stolen.status_code == 403
        assert stolen.headers["set-cookie"].startswith("portal_form=")  # so a retry works
        retry = await send_form(stranger, contact_form.id, tokens=hidden(stolen.text))
        assert retry.status_code == 303
    assert len(await tickets(server, acme)) == 1


SITE = "https://www.acme.example"
FRAMED_BY_SITE = f"frame-ancestors 'self' {SITE}"


async def test_iframe_variant_may_be_framed_and_uses_the_form_token(server, acme, contact_form):
    await server.settings_changed(acme, {"embed_origins": [SITE]})
    async with server.client() as client:
        page = await client.get(f"/forms/{contact_form.id}", params={"embed": "1"})
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert FRAMED_BY_SITE in csp  # the tenant's own sites, no other
        assert "script-src 'self'" in csp
        assert "set-cookie" not in page.headers  # third-party cookies would be blocked anyway
        assert 'class="site-header"' not in page.text
        tokens = hidden(page.text)
        assert "csrf_token" not in tokens
        assert f'action="/forms/{contact_form.id}?embed=1"' in page.text
    async with server.client() as cookieless:
        bad = await send_form(
            cookieless,
            contact_form.id,
            tokens={**tokens, "form_token": "forged"},
            params={"embed": "1"},
        )
        assert bad.status_code == 403
        assert FRAMED_BY_SITE in bad.headers["content-security-policy"]
        sent = await send_form(cookieless, contact_form.id, tokens=tokens, params={"embed": "1"})
        assert sent.status_code == 303
        thanks = await cookieless.get(sent.headers["location"])
        assert "embed=1" in sent.headers["location"]
        assert FRAMED_BY_SITE in thanks.headers["content-security-policy"]
        assert reference(thanks.text) == "#1"


async def test_any_site_may_frame_the_form_only_when_the_tenant_says_so(server, acme, contact_form):
    async with server.client() as client:
        path = f"/forms/{contact_form.id}?embed=1"
        csp = (await client.get(path)).headers["content-security-policy"]
        assert "frame-ancestors 'self';" in csp + ";"  # nobody else by default
        await server.settings_changed(acme, {"embed_any_site": True})
        assert "frame-ancestors *" in (await client.get(path)).headers["content-security-policy"]


async def test_the_page_variant_is_not_frameable_after_errors_either(server, acme, contact_form):
    async with server.client() as client:
        response = await send_form(client, contact_form.id, {**VALID, "subject": ""})
        assert response.status_code == 400
        assert "frame-ancestors 'self'" in response.headers["content-security-policy"]


@pytest.mark.both_databases
async def test_a_double_submit_makes_one_ticket_and_shows_the_same_reference(
    server, acme, contact_form
):
    async with server.client() as client:
        tokens = await open_form(client, contact_form.id)
        first, second = await asyncio.gather(
            send_form(client, contact_form.id, tokens=tokens),
            send_form(client, contact_form.id, tokens=tokens),
        )
        third = await send_form(client, contact_form.id, tokens=tokens)  # a later retry
        refs = []
        for response in (first, second, third):
            assert response.status_code == 303, response.text
            refs.append(reference((await client.get(response.headers["location"])).text))
        assert refs == ["#1", "#1", "#1"]
        # A new page render is a new submission.
        other = await send_form(client, contact_form.id)
        assert reference((await client.get(other.headers["location"])).text) == "#2"
    assert len(await tickets(server, acme)) == 2


async def test_honeypot_pretends_success_and_creates_nothing(server, acme, contact_form):
    async with server.client() as client:
        response = await send_form(
            client, contact_form.id, {**VALID, HONEYPOT: "http://spam.example"}
        )
        assert response.status_code == 303
        thanks = await client.get(response.headers["location"])
        assert thanks.status_code == 200
        assert "We received your request." in thanks.text
        assert 'class="reference"' not in thanks.text
    assert await tickets(server, acme) == []


async def test_rate_limit_per_address_answers_429_with_retry_after(server, acme, contact_form):
    await server.core.tenants.update_tenant_settings(acme.id, {"form_ip_limit_per_minute": 2})
    async with server.client() as client:
        for _ in range(2):
            assert (await send_form(client, contact_form.id)).status_code == 303
        limited = await send_form(client, contact_form.id)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "Too many requests" in limited.text
        api = await client.post(f"/api/forms/{contact_form.id}/submissions", json={})
        assert api.status_code == 429
        assert api.json()["retry_after"] >= 1
        assert api.headers["access-control-allow-origin"] == "*"
    assert len(await tickets(server, acme)) == 2


async def test_rate_limit_per_tenant(server, acme, contact_form):
    await server.core.tenants.update_tenant_settings(
        acme.id, {"form_ip_limit_per_minute": 100, "form_tenant_limit_per_minute": 3}
    )
    other = await server.tenant("other", "Other")
    other_form = await server.core.forms.save_form(other.id, contact_form_draft())
    async with server.client() as client:
        statuses = [(await send_form(client, contact_form.id)).status_code for _ in range(4)]
        assert statuses == [303, 303, 303, 429]
    async with server.client(host="other.portal.test") as client:
        assert (await send_form(client, other_form.id)).status_code == 303


def contact_form_draft():
    from portal.core.contract import FormDraft

    return FormDraft("Contact")


async def test_errors_come_in_the_visitors_language(server, acme, contact_form):
    async with server.client() as client:
        client.headers["accept-language"] = "nb-NO,nb;q=0.9"
        response = await send_form(client, contact_form.id, {**VALID, "subject": "", "email": "x"})
        assert response.status_code == 400
        assert '<html lang="nb" dir="ltr">' in response.text
        assert field_error(response.text, "subject") == "Dette feltet er obligatorisk."
        assert "e-postadresse" in field_error(response.text, "email")
        assert 'value="x"' in response.text
    async with server.client() as client:
        page = await client.get(f"/forms/{contact_form.id}", params={"lang": "ja"})
        response = await send_form(
            client,
            contact_form.id,
            {**VALID, "subject": ""},
            tokens=hidden(page.text),
            params={"lang": "ja"},
        )
        assert '<html lang="ja" dir="ltr">' in response.text
        assert field_error(response.text, "subject") != "This field is required."


async def test_unknown_form_is_404(server, acme, contact_form):
    async with server.client() as client:
        assert (await client.get("/forms/999999")).status_code == 404
        assert (await client.get("/forms/99999999999999")).status_code == 404
        assert (await client.post("/forms/999999", data=VALID)).status_code == 404
        api = await client.get("/api/forms/999999")
        assert api.status_code == 404 and api.json()["error"]
    await server.tenant("other", "Other")
    async with server.client(host="other.portal.test") as client:
        assert (await client.get(f"/forms/{contact_form.id}")).status_code == 404
