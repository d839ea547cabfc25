"""The upload policy (one check for forms, replies and chat), the store, and the one download."""

import pytest

from portal.attachments import (
    REFUSE,
    RENAME,
    AttachmentRejected,
    AttachmentStore,
    Limits,
    Upload,
    check,
    content_disposition,
    refusals,
    safe_filename,
    sniff,
)
from portal.core.contract import MessageDraft, Tenant, TicketDraft
from portal.i18n import translations, use_language
from tests.conftest import customer_cookie, staff_cookie

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


@pytest.mark.parametrize(
    "raw, safe",
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b.txt", "a_b.txt"),
        ("", "file"),
        ("...", "file"),
        ("C:\\Users\\x\\photo.png", "photo.png"),
        ("résumé.pdf", "résumé.pdf"),
    ],
)
def test_safe_filename(raw, safe):
    assert safe_filename(raw) == safe


def test_types_are_sniffed_from_content_not_name():
    assert sniff(PNG) == "image/png"
    assert sniff(PDF) == "application/pdf"
    assert sniff("hei på deg 你好".encode()) == "text/plain"
    assert sniff(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00") not in {"text/plain", "image/png"}
    assert sniff(b"\xff\xfe\x00\x00binary") is None


def upload(name: str, data: bytes) -> Upload:
    return Upload("files", name, data)


def test_limits_and_types_are_enforced():
    limits = Limits(max_bytes=100, max_count=2)
    check([upload("a.png", PNG)], limits)
    with pytest.raises(AttachmentRejected, match="at most 2"):
        check([upload("a.png", PNG)] * 3, limits)
    with pytest.raises(AttachmentRejected, match="big.png is larger than 100 B"):
        check([upload("big.png", PNG + b"x" * 100)], limits)
    with pytest.raises(AttachmentRejected, match="not a file type"):
        check([upload("photo.png", b"MZ\x90\x00" + b"\x00" * 60)], limits)
    with pytest.raises(AttachmentRejected, match="empty"):
        check([upload("empty.txt", b"")], limits)


def test_refusals_are_keyed_by_the_input_and_in_the_current_language():
    exe = Upload("screenshot", "x.png", b"MZ\x90\x00" + b"\x00" * 60)
    notes = [Upload("attachments", f"{n}.txt", b"note") for n in range(3)]
    found = refusals([exe, *notes], Limits(max_count=2), count_field="attachments")
    assert found == {
        "screenshot": "x.png is not a file type we accept (images, PDF, plain text or ZIP).",
        "attachments": "Attach at most 2 files.",
    }
    big = [upload("big.txt", b"a" * 11)]
    with use_language("nb"):
        [message] = refusals(big, Limits(max_bytes=10), count_field="files").values()
    wanted = translations("nb").gettext("%(name)s is larger than %(size)s.")
    assert message == wanted % {"name": "big.txt", "size": "10 B"}
    assert message != "big.txt is larger than 10 B."


def test_saved_files_stay_inside_the_tenant_folder(tmp_path):
    store = AttachmentStore(tmp_path)
    draft = store.save(7, "../../evil.png", PNG)
    assert draft.filename == "evil.png" and draft.content_type == "image/png"
    path = store.path(7, draft.storage_key)
    assert path.parent == tmp_path / "7" and path.read_bytes() == PNG
    assert store.save(7, "again.png", PNG).storage_key == draft.storage_key
    with pytest.raises(FileNotFoundError):
        store.path(7, "../../etc/passwd")


# ------------------------------------------------------------------ names that hide or run
@pytest.mark.parametrize(
    "raw, safe",
    [
        ("invoice\u202efdp.bat", "invoicefdp.bat"),  # shown as "invoicetab.pdf" with the RLO
        ("\u2066photo\u2069\u200e.png", "photo.png"),
        ("a\u061cb\u200fc.txt", "abc.txt"),
        ("zero\u200bwidth.pdf", "zerowidth.pdf"),
        ("line\u2028break.txt", "line_break.txt"),
    ],
)
def test_safe_filename_drops_bidi_and_format_characters(raw, safe):
    assert safe_filename(raw) == safe


@pytest.mark.parametrize(
    "name, data, stored",
    [
        ("page.html", b"<script>alert(1)</script>", "page.html.txt"),
        ("x.svg", b"<svg onload='alert(1)'/>", "x.svg.txt"),
        ("invoice\u202efdp.bat", b"del C:\\*", "invoicefdp.bat.txt"),
        ("RUN.JS", b"alert(1)", "RUN.JS.txt"),
        ("tool.jar", b"PK\x03\x04" + b"\x00" * 60, "tool.jar.zip"),
        ("cat.html", PNG, "cat.html.png"),
        ("notes.txt", b"just notes", "notes.txt"),
        ("photo.png", PNG, "photo.png"),
        ("html", b"no extension at all", "html"),
    ],
)
def test_names_that_could_run_are_stored_with_a_safe_extension(tmp_path, name, data, stored):
    store = AttachmentStore(tmp_path)
    check([upload(name, data)], Limits())  # the default policy renames, it does not refuse
    assert store.save(1, name, data).filename == stored


def test_a_tenant_may_refuse_names_that_could_run():
    refuse = Limits(dangerous_names=REFUSE)
    with pytest.raises(AttachmentRejected, match=r"page\.html is not accepted: .*run programs"):
        check([upload("page.html", b"<p>hi</p>")], refuse)
    with pytest.raises(AttachmentRejected, match="invoicefdp.bat is not accepted"):
        check([upload("invoice\u202efdp.bat", b"echo")], refuse)
    check([upload("notes.txt", b"fine")], refuse)


def test_the_policy_comes_from_the_tenant_settings():
    def tenant(**settings: object) -> Tenant:
        return Tenant(1, "acme", "Acme", settings=settings)

    assert Limits.for_tenant(tenant()).dangerous_names == RENAME
    assert Limits.for_tenant(tenant(attachment_dangerous_names=REFUSE)).dangerous_names == REFUSE
    assert Limits.for_tenant(tenant(attachment_dangerous_names="bogus")).dangerous_names == RENAME


# ------------------------------------------------------------------ the one download answer
def test_a_download_names_its_file_for_every_client():
    assert content_disposition("shot.png") == (
        "attachment; filename=\"shot.png\"; filename*=UTF-8''shot.png"
    )
    header = content_disposition('résumé "final".pdf')
    assert header.startswith('attachment; filename="resume _final_.pdf"; ')
    assert header.endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf")
    assert 'filename="file"' in content_disposition("日本")


async def test_the_three_downloads_send_the_same_security_headers(server, settings):
    """The portal's, the console's and the chat's file: one answer, the safest headers."""
    tenant = await server.tenant()
    await server.agent(tenant, "agent@acme.example", "agent-password", role="agent")
    core, store = server.core, AttachmentStore(settings.data_path / "attachments")
    saved = store.save(tenant.id, "shot.png", PNG)
    draft = TicketDraft(
        subject="A file",
        description="See the file.",
        requester_email="kari@example.com",
        attachments=(saved,),
    )
    ticket = await core.tickets.create_ticket(tenant.id, draft, "downloads")
    [reply] = await core.tickets.list_replies(tenant.id, ticket.id)
    [ticket_file] = reply.attachments
    conversation = await core.chat.start_conversation(
        tenant.id, visitor_id="v1", idempotency_key="downloads"
    )
    message = await core.chat.add_chat_message(
        tenant.id,
        conversation.id,
        MessageDraft(
            author_type="visitor",
            author_id=None,
            author_name="Kari",
            body="",
            client_id="c1",
            attachments=(saved,),
        ),
    )
    [chat_file] = message.attachments
    customer = await core.customers.ensure_customer(tenant.id, "kari@example.com", "Kari")
    secret = settings.secret_key
    answers = {}
    async with server.client() as client:
        answers["portal"] = await client.get(
            f"/portal/attachments/{ticket_file.id}",
            headers={"cookie": await customer_cookie(core, secret, customer)},
        )
        answers["console"] = await client.get(
            f"/agent/attachments/{ticket_file.id}",
            headers={"cookie": await staff_cookie(core, secret, tenant, "agent@acme.example")},
        )
        answers["chat"] = await client.get(server.service("messenger").file_link(chat_file.id))
    wanted = {
        "content-disposition": "attachment; filename=\"shot.png\"; filename*=UTF-8''shot.png",
        "content-type": "image/png",
        "x-content-type-options": "nosniff",
        "content-security-policy": "default-src 'none'; sandbox",
        "cache-control": "private, no-store",
    }
    for name, answer in answers.items():
        assert answer.status_code == 200, name
        assert answer.content == PNG, name
        assert {key: answer.headers.get(key) for key in wanted} == wanted, name
