"""The customer portal in Chromium: sign-in in a cross-site iframe (CHIPS), live replies, rating."""

from __future__ import annotations

import dataclasses

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from portal.core.contract import Field, FormDraft, ReplyDraft, TicketDraft
from portal.security import hash_password
from tests.browser.conftest import serving
from tests.conftest import TEST_HASH_COST
from tests.customer.conftest import code_in, link_path, mail_text, wait_mail

pytestmark = pytest.mark.browser

ALICE = "alice@example.com"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def company_site(portal_url: str) -> Starlette:
    """The company's own web page, on another site, with the portal in an iframe."""

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><title>Company site</title><h1>Welcome to Acme</h1>"
            f'<iframe id="help" title="Help" src="{portal_url}/portal/sign-in?embed=1" '
            'width="900" height="800"></iframe>'
        )

    return Starlette(routes=[Route("/", home)])


async def test_sign_in_inside_a_cross_site_iframe(settings, core, smtp, browser, tmp_path):
    """The top page is http://127.0.0.1:A, the iframe http://localhost:B: different sites.

    Chromium treats localhost as a secure context, so the `Secure; SameSite=None; Partitioned`
    cookie is kept there, in a jar of its own for the company's site.
    """
    from portal.app import create_app

    mail = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=str(smtp.port))
    tenant = await core.tenants.create_tenant("acme", "Acme", domains=("localhost",))
    ticket = await core.tickets.create_ticket(
        tenant.id, TicketDraft("Printer is broken", "It jams.", ALICE), "seed"
    )
    agent = await core.tenants.create_agent(tenant.id, "sam@acme.test", "Sam Support", "x", "agent")
    async with serving(create_app(mail, core=core)) as portal_url:
        portal_origin = portal_url.replace("127.0.0.1", "localhost")
        async with serving(company_site(portal_origin)) as site_url:
            await core.tenants.update_tenant_settings(tenant.id, {"embed_origins": [site_url]})
            context = await browser.new_context(locale="en-US")
            try:
                page = await context.new_page()
                await page.goto(site_url + "/")
                frame = page.frame_locator("iframe#help")
                await frame.get_by_label("Email address").fill(ALICE)
                await frame.get_by_role("button", name="Email me a sign-in link").click()
                await frame.get_by_role("heading", name="Check your email").wait_for()

                message = await wait_mail(smtp, ALICE)
                await frame.get_by_label("Code").fill(code_in(message))
                await frame.get_by_role("button", name="Sign in").click()
                await frame.get_by_role("heading", name="My requests").wait_for()
                await frame.get_by_role("link", name="Printer is broken").click()
                await frame.get_by_role("heading", name="Printer is broken").wait_for()
                await page.screenshot(path=str(tmp_path / "iframe.png"), full_page=True)

                (cookie,) = [c for c in await context.cookies() if c["name"] == "portal_customer"]
                assert cookie["sameSite"] == "None"
                assert cookie["secure"] and cookie["httpOnly"]
                assert cookie.get("partitionKey", "").startswith("http://127.0.0.1")

                # Live updates reach the iframe too (EventSource with the partitioned cookie).
                await core.tickets.add_reply(
                    tenant.id, ticket.id,
                    ReplyDraft(
                        author_type="agent", author_id=agent.id,
                        body="Fixed from the iframe's point of view", internal=False,
                    ),
                    "r",
                )  # fmt: skip
                await frame.get_by_text("Fixed from the iframe's point of view").wait_for(
                    timeout=10_000
                )

                # The same portal opened top-level is another partition: not signed in there.
                top = await context.new_page()
                await top.goto(portal_origin + "/portal/tickets")
                assert "/portal/sign-in" in top.url
            finally:
                await context.close()


async def test_portal_story_sign_in_live_reply_and_rating(settings, core, smtp, browser, tmp_path):
    """A seeded ticket; the reply and status change are made through the core as an agent."""
    from portal.app import create_app

    mail = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=str(smtp.port))
    tenant = await core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    await core.tenants.update_tenant_settings(tenant.id, {"expected_response": "within 4 hours"})
    ticket = await core.tickets.create_ticket(
        tenant.id, TicketDraft("Cannot export data", "The button is grey.", ALICE), "seed"
    )
    agent = await core.tenants.create_agent(tenant.id, "sam@demo.test", "Sam Support", "x", "agent")
    async with serving(create_app(mail, core=core)) as url:
        context = await browser.new_context(locale="en-US")
        try:
            page = await context.new_page()
            await page.goto(url + "/portal/tickets")
            assert "/portal/sign-in" in page.url
            await page.get_by_label("Email address").fill(ALICE)
            await page.get_by_role("button", name="Email me a sign-in link").click()
            await page.get_by_role("heading", name="Check your email").wait_for()
            message = await wait_mail(smtp, ALICE)
            await page.goto(url + link_path(message))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/portal/tickets")
            await page.get_by_role("link", name="Cannot export data").click()
            await page.wait_for_url(f"**/portal/tickets/{ticket.id}")
            assert await page.get_by_text("within 4 hours").is_visible()
            assert not await page.locator("#rating").is_visible()
            await page.evaluate("window.__sameDocument = true")

            await core.tickets.add_reply(
                tenant.id, ticket.id,
                ReplyDraft(
                    author_type="agent", author_id=agent.id,
                    body="<b>Not bold</b>: try the new export page.", internal=False,
                ),
                "r1",
            )  # fmt: skip
            await core.tickets.add_reply(
                tenant.id, ticket.id,
                ReplyDraft(
                    author_type="agent", author_id=agent.id, body="INTERNAL: known bug",
                    internal=True,
                ),
                "n1",
            )  # fmt: skip
            reply = page.locator("#conversation .reply-agent")
            await reply.wait_for(timeout=10_000)
            assert "<b>Not bold</b>" in await reply.locator(".reply-body").inner_text()
            assert await page.locator("#conversation b").count() == 0
            assert "Sam Support" in await reply.inner_text()

            await core.tickets.set_ticket_status(
                tenant.id, ticket.id, "resolved", agent_id=agent.id
            )
            await page.locator("#ticket-status", has_text="Resolved").wait_for(timeout=10_000)
            await page.locator("#rating").wait_for(state="visible")
            assert await page.evaluate("window.__sameDocument") is True  # no reload so far
            assert "INTERNAL" not in await page.content()

            await page.get_by_label("Good").check()
            await page.get_by_label("Comment (optional)").fill("Quick answer, thanks")
            await page.get_by_role("button", name="Save rating").click()
            await page.wait_for_url("**rated=1**")
            assert await page.get_by_text("Thank you! Your rating is saved.").is_visible()
            await page.screenshot(path=str(tmp_path / "ticket.png"), full_page=True)
        finally:
            await context.close()
    rating = await core.tickets.get_rating(tenant.id, ticket.id)
    assert rating is not None and rating.good and rating.comment == "Quick answer, thanks"


async def test_full_story_form_console_portal(settings, core, smtp, browser, tmp_path):
    """Form with a custom field and a file -> reference -> sign-in by mail -> the agent replies
    in the console -> the reply shows in the portal without reload -> resolved -> rated."""
    from portal.app import create_app

    mail = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=str(smtp.port))
    tenant = await core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    form = await core.forms.save_form(
        tenant.id,
        FormDraft(
            "Report a problem",
            fields=(Field("order_ref", "Order reference", "text", required=True),),
        ),
    )
    await core.tenants.create_agent(
        tenant.id,
        "sam@demo.test",
        "Sam Support",
        hash_password("agent-password-1", cost=TEST_HASH_COST),
        "agent",
    )
    async with serving(create_app(mail, core=core)) as url:
        visitor = await browser.new_context(locale="en-US")
        console = await browser.new_context(locale="en-US")
        try:
            page = await visitor.new_page()
            await page.goto(f"{url}/forms/{form.id}")
            await page.locator("#f-email").fill(ALICE)
            await page.locator("#f-subject").fill("Order arrived broken")
            await page.locator("#f-description").fill("The box was crushed.")
            await page.locator("#f-order_ref").fill("A-1042")
            await page.locator("#f-attachments").set_input_files(
                files=[{"name": "box.png", "mimeType": "image/png", "buffer": PNG}]
            )
            await page.get_by_role("button", name="Send").click()
            reference = await page.locator(".reference").inner_text()
            assert reference.startswith("#")

            await page.goto(url + "/portal/sign-in")
            await page.get_by_label("Email address").fill(ALICE)
            await page.get_by_role("button", name="Email me a sign-in link").click()
            message = await wait_mail(smtp, ALICE, lambda m: "/portal/sign-in/" in mail_text(m))
            await page.goto(url + link_path(message))
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url("**/portal/tickets")
            await page.get_by_role("link", name="Order arrived broken").click()
            assert reference in await page.locator("h1").inner_text()
            assert await page.get_by_role("link", name="box.png").is_visible()
            ticket_url = page.url
            ticket_id = int(ticket_url.rsplit("/", 1)[1])
            await page.evaluate("window.__sameDocument = true")

            agent_page = await console.new_page()
            await agent_page.goto(url + "/admin/login")
            await agent_page.locator("#f-email").fill("sam@demo.test")
            await agent_page.locator("#f-password").fill("agent-password-1")
            await agent_page.get_by_role("button", name="Sign in").click()
            await agent_page.wait_for_load_state()
            await agent_page.goto(f"{url}/agent/tickets/{ticket_id}")
            await agent_page.locator("#f-body").fill("We are sending a new one today.")
            await agent_page.get_by_role("button", name="Send reply").click()
            await agent_page.wait_for_load_state()

            await page.get_by_text("We are sending a new one today.").wait_for(timeout=10_000)

            await agent_page.locator("#f-status").select_option("resolved")
            await agent_page.get_by_role("button", name="Change status").click()
            await page.locator("#rating").wait_for(state="visible", timeout=10_000)
            assert await page.evaluate("window.__sameDocument") is True

            await page.get_by_label("Good").check()
            await page.get_by_role("button", name="Save rating").click()
            await page.wait_for_url("**rated=1**")
            await page.screenshot(path=str(tmp_path / "story.png"), full_page=True)
        finally:
            await visitor.close()
            await console.close()
    rating = await core.tickets.get_rating(tenant.id, ticket_id)
    assert rating is not None and rating.good
