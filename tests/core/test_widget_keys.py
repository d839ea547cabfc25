"""Widget identity in the embedded core: signing keys, customers by external id (both databases)."""

from __future__ import annotations

import pytest

from portal.core.contract import Conflict, NotFound, TicketDraft, WidgetKey

PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"


async def test_keys_are_added_listed_and_deleted_per_tenant(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    globex = await core.tenants.create_tenant("globex", "Globex")
    first = await core.customers.add_widget_key(acme.id, "k1", "HS256", "s" * 43, None)
    assert isinstance(first, WidgetKey)
    assert (first.kid, first.alg, first.secret, first.public_key) == ("k1", "HS256", "s" * 43, None)
    assert first.created_at.tzinfo is not None
    second = await core.customers.add_widget_key(acme.id, "k2", "EdDSA", None, PEM)
    await core.customers.add_widget_key(
        globex.id, "k1", "HS256", "g" * 43, None
    )  # kids are per tenant
    assert [k.kid for k in await core.customers.list_widget_keys(acme.id)] == ["k1", "k2"]
    assert (await core.customers.list_widget_keys(acme.id))[1] == second

    with pytest.raises(Conflict):
        await core.customers.add_widget_key(acme.id, "k1", "HS256", "t" * 43, None)
    with pytest.raises(NotFound):
        await core.customers.delete_widget_key(globex.id, first.id)  # not another tenant's
    await core.customers.delete_widget_key(acme.id, first.id)
    assert [k.kid for k in await core.customers.list_widget_keys(acme.id)] == ["k2"]
    with pytest.raises(NotFound):
        await core.customers.delete_widget_key(acme.id, first.id)
    assert [k.secret for k in await core.customers.list_widget_keys(globex.id)] == ["g" * 43]


@pytest.mark.parametrize(
    ("alg", "secret", "public_key"),
    [
        ("RS256", None, PEM),  # not an algorithm we take
        ("none", "x", None),
        ("HS256", None, None),  # a secret key without its secret
        ("HS256", "s" * 43, PEM),
        ("ES256", "s" * 43, None),  # a public-key algorithm with a secret: alg confusion
        ("EdDSA", None, None),
    ],
)
async def test_a_key_must_fit_its_algorithm(core, alg, secret, public_key):
    acme = await core.tenants.create_tenant("acme", "Acme")
    with pytest.raises(ValueError):
        await core.customers.add_widget_key(acme.id, "k", alg, secret, public_key)
    assert await core.customers.list_widget_keys(acme.id) == []


async def test_a_new_external_id_makes_a_verified_customer(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    customer = await core.customers.identified_customer(acme.id, "user-1", "Kim@Example.com", "Kim")
    assert (customer.external_id, customer.email, customer.name) == (
        "user-1",
        "kim@example.com",
        "Kim",
    )
    assert customer.email_verified_at is not None
    again = await core.customers.identified_customer(acme.id, "user-1", "kim@example.com", "Kim")
    assert again == customer
    assert await core.customers.get_customer(acme.id, customer.id) == customer


async def test_an_existing_customer_with_the_email_is_linked(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    ticket = await core.tickets.create_ticket(
        acme.id, TicketDraft("Help", "Please", "pat@example.com", "Pat"), "k1"
    )
    before = await core.customers.get_customer(acme.id, ticket.customer_id)
    assert before.external_id is None and before.email_verified_at is None
    linked = await core.customers.identified_customer(
        acme.id, "u-9", "pat@example.com", "Pat Smith"
    )
    assert linked.id == ticket.customer_id
    assert (linked.external_id, linked.name) == ("u-9", "Pat Smith")
    assert linked.email_verified_at is not None


async def test_the_token_keeps_email_and_name_up_to_date(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    first = await core.customers.identified_customer(acme.id, "u-1", "old@example.com", "Old Name")
    moved = await core.customers.identified_customer(acme.id, "u-1", "new@example.com", "New Name")
    assert moved.id == first.id
    assert (moved.email, moved.name) == ("new@example.com", "New Name")
    # No email or name in a later token: what we know stays.
    same = await core.customers.identified_customer(acme.id, "u-1", None, "")
    assert (same.id, same.email, same.name) == (first.id, "new@example.com", "New Name")


async def test_an_email_someone_else_holds_is_not_taken_from_them(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    other = await core.customers.ensure_customer(acme.id, "taken@example.com", "Other")
    mine = await core.customers.identified_customer(acme.id, "u-1", "me@example.com", "Me")
    after = await core.customers.identified_customer(acme.id, "u-1", "taken@example.com", "Me")
    assert (after.id, after.email) == (mine.id, "me@example.com")
    assert (await core.customers.get_customer(acme.id, other.id)).external_id is None


async def test_an_email_of_another_external_id_is_a_conflict(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    await core.customers.identified_customer(acme.id, "u-1", "kim@example.com", "Kim")
    with pytest.raises(Conflict):
        await core.customers.identified_customer(acme.id, "u-2", "kim@example.com", "Someone")


async def test_no_email_finds_but_never_makes_a_customer(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    with pytest.raises(NotFound):
        await core.customers.identified_customer(acme.id, "u-1", None, "Kim")
    made = await core.customers.identified_customer(acme.id, "u-1", "kim@example.com", "Kim")
    assert (await core.customers.identified_customer(acme.id, "u-1", None, "")).id == made.id


async def test_external_ids_are_per_tenant(core):
    acme = await core.tenants.create_tenant("acme", "Acme")
    globex = await core.tenants.create_tenant("globex", "Globex")
    a = await core.customers.identified_customer(acme.id, "u-1", "kim@example.com", "Kim")
    b = await core.customers.identified_customer(globex.id, "u-1", "kim@example.com", "Kim")
    assert a.id != b.id and (a.tenant_id, b.tenant_id) == (acme.id, globex.id)
    # Many customers without an external id live side by side (NULLs never collide).
    await core.customers.ensure_customer(acme.id, "a@example.com")
    await core.customers.ensure_customer(acme.id, "b@example.com")
