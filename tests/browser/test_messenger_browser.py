"""The messenger in Chromium: a visitor chats with an agent in the console on a second page.

The visitor starts through the pre-chat form, the agent accepts and answers with a canned
response, typing indicators and read receipts go both ways, an internal note stays in the
console, and a reload of the visitor's page shows the whole history in order and carries on.
"""

from __future__ import annotations

import pytest

from portal.security import hash_password
from tests.browser.conftest import serving
from tests.conftest import TEST_HASH_COST

pytestmark = pytest.mark.browser

QUESTION = "My order #1042 has not arrived."
CANNED = "Thanks {{customer.name}}, {{agent.name}} here. I am looking at it now."
ANSWER = "Thanks Alice, Sam Support here. I am looking at it now."
NOTE = "VIP customer, check the courier first"
THANKS = "Thank you! <b>not bold</b>"
AFTER_RELOAD = "One more thing: the box number is 7."


async def bodies(page, selector: str) -> list[str]:
    return await page.locator(f"{selector} li[data-id] .chat-body").all_inner_texts()


async def test_visitor_chats_with_an_agent_and_keeps_the_history_over_a_reload(
    settings, core, browser, tmp_path
):
    from portal.app import create_app

    tenant = await core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    await core.tenants.create_agent(
        tenant.id,
        "sam@demo.test",
        "Sam Support",
        hash_password("agent-password-1", cost=TEST_HASH_COST),
        "agent",
    )
    await core.chat.save_canned_response(tenant.id, "thanks", CANNED)
    async with serving(create_app(settings, core=core)) as url:
        visitor = await browser.new_context(locale="en-US")
        console = await browser.new_context(locale="en-US")
        errors: list[str] = []
        try:
            # The agent signs in and opens the live chats; the console says they are online.
            agent = await console.new_page()
            agent.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
            await agent.goto(url + "/admin/login")
            await agent.locator("#f-email").fill("sam@demo.test")
            await agent.locator("#f-password").fill("agent-password-1")
            await agent.get_by_role("button", name="Sign in").click()
            await agent.wait_for_load_state()
            await agent.goto(url + "/agent/chats")
            await agent.locator("#chats-presence-dot.is-online").wait_for(timeout=10_000)

            # The visitor starts a chat through the pre-chat form.
            page = await visitor.new_page()
            page.on("pageerror", lambda exc: errors.append(f"visitor: {exc}"))
            await page.goto(url + "/messenger")
            await page.get_by_label("Your name", exact=True).fill("Alice")
            await page.get_by_label("Email address", exact=True).fill("alice@example.com")
            await page.get_by_label("Your question").fill(QUESTION)
            await page.get_by_role("button", name="Start chat").click()
            await page.locator("#msgr-log li[data-id]", has_text=QUESTION).wait_for(timeout=10_000)
            assert await page.get_by_label("Message", exact=True).is_visible()

            # The agent sees it waiting, opens and accepts it.
            item = agent.locator("#chats-list .chats-item", has_text="Alice")
            await item.wait_for(timeout=10_000)
            assert QUESTION in await item.inner_text()
            await item.click()
            await agent.locator("#chats-log li[data-id]", has_text=QUESTION).wait_for()
            await agent.get_by_role("button", name="Accept").click()
            await agent.locator("#chats-assignee", has_text="Sam Support").wait_for()
            await agent.locator('[data-count="mine"]', has_text="1").wait_for()

            # Typing shows on the visitor's side; a canned response fills its placeholders.
            box = agent.get_by_label("Message", exact=True)
            await box.press_sequentially("/tha", delay=30)
            await page.locator("#msgr-typing", has_text="Sam Support is typing").wait_for(
                timeout=10_000
            )
            await agent.locator("#chats-suggestions li", has_text="/thanks").wait_for()
            await box.press("Enter")  # picks the suggestion
            assert await box.input_value() == ANSWER
            await box.press("Enter")  # sends the reply
            await page.locator("#msgr-log li[data-id]", has_text=ANSWER).wait_for(timeout=10_000)
            await page.locator("#msgr-typing").wait_for(state="hidden")
            assert await page.locator("#msgr-title").inner_text() == "Sam Support"
            reply = page.locator("#msgr-log li.chat-msg-theirs", has_text=ANSWER)
            assert await reply.locator(".chat-avatar").inner_text() == "SS"

            # Read receipts: the visitor's page was visible, so the agent's reply is "Seen";
            # the agent read the question, so the visitor's message is "Seen" too.
            await agent.locator("#chats-log li.is-seen", has_text=ANSWER).wait_for(timeout=10_000)
            await page.locator("#msgr-log li.is-seen", has_text=QUESTION).wait_for(timeout=10_000)

            # An internal note stays in the console, marked as one.
            await box.fill(NOTE)
            await agent.get_by_role("button", name="Add internal note").click()
            note = agent.locator("#chats-log li.chat-msg-internal[data-id]", has_text=NOTE)
            await note.wait_for(timeout=10_000)

            # The visitor types (the agent sees it) and answers; text is never HTML.
            composer = page.get_by_label("Message", exact=True)
            await composer.press_sequentially("Thank", delay=30)
            await agent.locator("#chats-typing", has_text="Alice is typing").wait_for(
                timeout=10_000
            )
            await composer.fill(THANKS)
            await composer.press("Enter")
            await agent.locator("#chats-log li[data-id]", has_text=THANKS).wait_for(timeout=10_000)
            assert await page.locator("#msgr-log b").count() == 0
            await page.screenshot(path=str(tmp_path / "visitor-before-reload.png"))

            # A reload shows the whole history, in order, and the conversation carries on.
            await page.reload()
            await page.locator("#msgr-log li[data-id]", has_text=THANKS).wait_for(timeout=10_000)
            assert await bodies(page, "#msgr-log") == [QUESTION, ANSWER, THANKS]
            assert NOTE not in await page.content()
            assert await page.locator("#msgr-title").inner_text() == "Sam Support"
            assert await page.locator("#msgr-prechat").is_hidden()

            await page.get_by_label("Message", exact=True).fill(AFTER_RELOAD)
            await page.get_by_role("button", name="Send", exact=True).click()
            await agent.locator("#chats-log li[data-id]", has_text=AFTER_RELOAD).wait_for(
                timeout=10_000
            )
            assert await bodies(agent, "#chats-log") == [
                QUESTION,
                ANSWER,
                NOTE,
                THANKS,
                AFTER_RELOAD,
            ]
            await page.locator("#msgr-log li[data-id]", has_text=AFTER_RELOAD).wait_for()
            assert await page.locator("#msgr-log li.is-pending").count() == 0

            # The visitor's past conversations list this one.
            await page.get_by_role("button", name="Past conversations").click()
            await page.locator("#msgr-conversations button", has_text=QUESTION).wait_for()

            await page.screenshot(path=str(tmp_path / "visitor.png"))
            await agent.screenshot(path=str(tmp_path / "agent.png"))
            assert errors == []
        finally:
            await visitor.close()
            await console.close()


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


async def test_nobody_online_the_visitor_leaves_an_email_and_gets_a_ticket_and_transcript(
    settings, core, smtp, browser, tmp_path
):
    """No pre-chat form, the widget's iframe size, a file, nobody online: email, ticket, mail."""
    import dataclasses

    from portal.app import create_app

    mail = dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=str(smtp.port))
    tenant = await core.tenants.create_tenant("demo", "Demo Co", domains=("127.0.0.1",))
    await core.tenants.update_tenant_settings(tenant.id, {"chat_prechat": "off"})
    async with serving(create_app(mail, core=core)) as url:
        context = await browser.new_context(
            locale="en-US", viewport={"width": 375, "height": 640}, has_touch=True
        )
        errors: list[str] = []
        try:
            page = await context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/messenger?embed=1")
            assert await page.locator("#msgr-prechat").is_hidden()
            assert await page.locator(".site-header").count() == 0
            composer = page.get_by_label("Message", exact=True)
            assert await composer.evaluate("e => getComputedStyle(e).fontSize") == "16px"

            await page.locator("#msgr-file").set_input_files(
                files=[{"name": "parcel.png", "mimeType": "image/png", "buffer": PNG}]
            )
            await page.locator("#msgr-uploads li", has_text="parcel.png").wait_for()
            await page.locator("#msgr-uploads li", has_text="Uploading").wait_for(state="detached")
            await composer.fill("Where is my parcel?")
            await composer.press("Enter")

            await page.locator("#msgr-log li[data-id]", has_text="Where is my parcel?").wait_for(
                timeout=10_000
            )
            link = page.get_by_role("link", name="parcel.png")
            await link.wait_for(timeout=10_000)
            assert (await link.get_attribute("href") or "").startswith("/messenger/attachments/")

            # Nobody is online: the visitor is told so and asked for an email address.
            notice = page.locator("#msgr-notice")
            await notice.wait_for(timeout=10_000)
            email = page.get_by_label("Your email address")
            await email.wait_for()
            await email.fill("bob@example.com")
            await page.locator("#msgr-email-form button[type=submit]").click()
            await page.locator("#msgr-email-form").wait_for(state="hidden", timeout=10_000)
            await notice.filter(has_text="#").wait_for(timeout=10_000)  # the request's number
            # The composer stays in view on a small screen.
            box = await page.locator("#msgr-composer").bounding_box()
            assert box is not None and box["y"] + box["height"] <= 640

            await page.get_by_role("button", name="Email me the transcript").click()
            await smtp.wait_for("bob@example.com", timeout=10.0)
            await page.screenshot(path=str(tmp_path / "offline.png"))
            assert errors == []
        finally:
            await context.close()
    (conversation,) = await core.chat.list_conversations(tenant.id)
    assert conversation.ticket_id is not None and conversation.visitor_email == "bob@example.com"
