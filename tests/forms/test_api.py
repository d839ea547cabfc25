"""The widget's JSON API over real HTTP: form tokens, CORS, idempotency, suggestions, deflection."""

from __future__ import annotations

import asyncio

import pytest

from portal.core.contract import FormDraft
from portal.forms.abuse import HONEYPOT

from .helpers import VALID, api_send, api_token, hidden

ORIGIN = {"origin": "https://www.customer.example"}


async def test_definition_has_a_token_labels_and_cors(server, acme, contact_form):
    async with server.client() as client:
        response = await client.get(f"/api/forms/{contact_form.id}", headers=ORIGIN)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["cache-control"] == "no-store"
        assert "set-cookie" not in response.headers
        body = response.json()
        assert body["title"] == "Contact us"
        assert body["form_token"] and body["visit_key"]
        assert body["honeypot"] == HONEYPOT
        assert body["submit_url"] == f"/api/forms/{contact_form.id}/submissions"
        keys = [f["key"] for f in body["standard_fields"]]
        assert keys == ["name", "email", "subject", "description", "priority", "attachments"]
        client.headers["accept-language"] = "nb"
        nb = (await client.get(f"/api/forms/{contact_form.id}")).json()
        assert nb["language"] == "nb"


async def test_preflight_is_answered(server, acme, contact_form):
    async with server.client() as client:
        for path in ("submissions", "deflections"):
            response = await client.options(
                f"/api/forms/{contact_form.id}/{path}",
                headers={
                    **ORIGIN,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type",
                },
            )
            assert response.status_code == 204
            assert response.headers["access-control-allow-origin"] == "*"
            assert "POST" in response.headers["access-control-allow-methods"]
            assert "content-type" in response.headers["access-control-allow-headers"].lower()


async def test_form_token_missing_forged_or_for_another_form(server, acme, contact_form):
    other_form = await server.core.forms.save_form(acme.id, FormDraft("Other"))
    other_tenant = await server.tenant("other", "Other")
    foreign_form = await server.core.forms.save_form(other_tenant.id, FormDraft("Foreign"))
    async with server.client() as client:
        mine = (await api_token(client, contact_form.id))["form_token"]
        for_other = (await api_token(client, other_form.id))["form_token"]
        page_token = hidden((await client.get(f"/forms/{contact_form.id}")).text)["form_token"]
    async with server.client(host="other.portal.test") as client:
        foreign = (await api_token(client, foreign_form.id))["form_token"]
        # contact_form's id on the other tenant is not a form there at all.
        assert foreign_form.id != contact_form.id
    async with server.client() as client:
        payload = {**VALID, "idempotency_key": "token-test-0001"}
        for token in (None, "", "forged.token.value", mine[:-2], for_other, foreign):
            body = payload if token is None else {**payload, "form_token": token}
            response = await api_send(client, contact_form.id, body, headers=ORIGIN)
            assert response.status_code == 403, token
            assert response.json()["errors"]["form_token"]
            assert response.headers["access-control-allow-origin"] == "*"
        assert (await server.core.tickets.list_tickets(acme.id)).total == 0
        ok = await api_send(client, contact_form.id, {**payload, "form_token": mine})
        assert ok.status_code == 201
        # The page's form token works on the API as well (same tenant, same form).
        again = await api_send(
            client,
            contact_form.id,
            {**payload, "form_token": page_token, "idempotency_key": "token-test-0002"},
        )
        assert again.status_code == 201
        assert "set-cookie" not in ok.headers


@pytest.mark.both_databases
async def test_api_retries_with_one_key_make_one_ticket(server, acme, contact_form):
    async with server.client() as client:
        token = (await api_token(client, contact_form.id))["form_token"]
        body = {**VALID, "form_token": token, "idempotency_key": "retry-key-12345"}
        responses = await asyncio.gather(
            *(api_send(client, contact_form.id, body) for _ in range(3))
        )
        header_key = await api_send(
            client,
            contact_form.id,
            {**VALID, "form_token": token},
            headers={"idempotency-key": "retry-key-12345"},
        )
        numbers = {r.json()["ticket"]["number"] for r in [*responses, header_key]}
        assert numbers == {1}
        assert responses[0].json()["ticket"]["reference"] == "#1"
        new = await api_send(client, contact_form.id, {**body, "idempotency_key": "another-key-1"})
        assert new.json()["ticket"]["number"] == 2
    assert (await server.core.tickets.list_tickets(acme.id)).total == 2


async def test_api_errors_are_422_per_field_in_the_visitors_language(server, acme, contact_form):
    async with server.client() as client:
        token = (await api_token(client, contact_form.id))["form_token"]
        body = {"form_token": token, "idempotency_key": "lang-key-12345", "email": "nope"}
        english = await api_send(client, contact_form.id, body)
        assert english.status_code == 422
        assert english.json()["errors"]["subject"] == "This field is required."
        norwegian = await api_send(client, contact_form.id, body, params={"lang": "nb"})
        assert norwegian.json()["errors"]["subject"] == "Dette feltet er obligatorisk."
        client.headers["accept-language"] = "nb-NO"
        also = await api_send(client, contact_form.id, body)
        assert also.json()["errors"]["subject"] == "Dette feltet er obligatorisk."
        assert "e-postadresse" in also.json()["errors"]["email"]
        wrong_type = await client.post(
            f"/api/forms/{contact_form.id}/submissions",
            content=b"x",
            headers={"content-type": "text/csv"},
        )
        assert wrong_type.status_code == 415
        broken = await client.post(
            f"/api/forms/{contact_form.id}/submissions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert broken.status_code == 400


async def test_api_honeypot_pretends_success(server, acme, contact_form):
    async with server.client() as client:
        token = (await api_token(client, contact_form.id))["form_token"]
        body = {**VALID, "form_token": token, "idempotency_key": "bot-key-123456", HONEYPOT: "x"}
        response = await api_send(client, contact_form.id, body)
        assert response.status_code == 201
        assert response.json() == {"ok": True, "ticket": None}
    assert (await server.core.tickets.list_tickets(acme.id)).total == 0


async def wait_suggested(client, form_id, query, timeout=5.0):
    """The search index follows the core in the background: wait until `query` finds something."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(f"/api/forms/{form_id}/suggestions", params={"q": query})
        assert response.status_code == 200
        if response.json()["results"]:
            return response
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{query!r} never found anything")
        await asyncio.sleep(0.05)


async def test_suggestions_and_deflections(server, acme, contact_form):
    for i in range(7):
        await server.article(acme, f"Printer problem number {i}", f"Turn the printer off {i}.")
    await server.article(acme, "Skriveren virker ikke", "Skru skriveren av.", language="nb")
    async with server.client() as client:
        # The index applies changes in order: once the last article is found, all of them are.
        nb = await wait_suggested(client, contact_form.id, "skriveren")
        assert nb.json()["results"][0]["language"] == "nb"
        response = await wait_suggested(client, contact_form.id, "printer problem")
        assert response.headers["access-control-allow-origin"] == "*"
        results = response.json()["results"]
        assert len(results) == 5
        first = results[0]
        assert first["title"].startswith("Printer problem")
        assert first["url"].startswith("http://acme.portal.test/kb/en/articles/printer-problem")
        empty = await client.get(f"/api/forms/{contact_form.id}/suggestions", params={"q": ""})
        assert empty.json()["results"] == []

        definition = await api_token(client, contact_form.id)
        token = definition["form_token"]
        record = {"form_token": token, "article_id": first["article_id"], "query": "printer"}
        url = f"/api/forms/{contact_form.id}/deflections"
        assert (await client.post(url, json=record)).status_code == 204
        # sendBeacon posts text/plain; opening it twice in one visit counts once.
        beacon = await client.post(
            url, content=__import__("json").dumps(record), headers={"content-type": "text/plain"}
        )
        assert beacon.status_code == 204
        forged = await client.post(url, json={**record, "form_token": "forged"})
        assert forged.status_code == 403
        wrong_visit = await client.post(url, json={**record, "visit_key": "someone-elses"})
        assert wrong_visit.status_code == 403
        unknown = await client.post(url, json={**record, "article_id": 999999})
        assert unknown.status_code == 404

        [row] = await server.core.forms.deflection_summary(acme.id)
        assert (row.article_id, row.opened, row.without_ticket) == (first["article_id"], 1, 1)

        # Another visit opens it and then sends a ticket anyway.
        second = await api_token(client, contact_form.id)
        await client.post(url, json={**record, "form_token": second["form_token"]})
        [row] = await server.core.forms.deflection_summary(acme.id)
        assert (row.opened, row.without_ticket) == (2, 2)
        sent = await api_send(
            client,
            contact_form.id,
            {**VALID, "form_token": second["form_token"], "idempotency_key": "after-reading-1"},
        )
        assert sent.status_code == 201
        [row] = await server.core.forms.deflection_summary(acme.id)
        assert (row.opened, row.without_ticket) == (2, 1)


async def test_the_page_form_marks_its_visit_as_ticketed(server, acme, contact_form):
    await server.article(acme, "Reset your password", "Click the link.")
    async with server.client() as client:
        page = await client.get(f"/forms/{contact_form.id}")
        assert 'id="suggestions"' in page.text and 'aria-live="polite"' in page.text
        tokens = hidden(page.text)
        hit = (await wait_suggested(client, contact_form.id, "password")).json()["results"][0]
        recorded = await client.post(
            f"/api/forms/{contact_form.id}/deflections",
            json={
                "form_token": tokens["form_token"],
                "article_id": hit["article_id"],
                "query": "pw",
            },
        )
        assert recorded.status_code == 204
        [row] = await server.core.forms.deflection_summary(acme.id)
        assert row.without_ticket == 1
        data = {**tokens, **VALID}
        assert (await client.post(f"/forms/{contact_form.id}", data=data)).status_code == 303
        [row] = await server.core.forms.deflection_summary(acme.id)
        assert (row.opened, row.without_ticket) == (1, 0)
