import pytest

from portal.attachments import (
    REFUSE,
    RENAME,
    AttachmentRejected,
    AttachmentStore,
    Limits,
    safe_filename,
    sniff,
)
from portal.core.contract import Tenant

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


def test_limits_and_types_are_enforced(tmp_path):
    store = AttachmentStore(tmp_path)
    limits = Limits(max_bytes=100, max_count=2)
    store.check([("a.png", PNG)], limits)
    with pytest.raises(AttachmentRejected, match="at most 2"):
        store.check([("a.png", PNG)] * 3, limits)
    with pytest.raises(AttachmentRejected, match="larger than"):
        store.check([("big.png", PNG + b"x" * 100)], limits)
    with pytest.raises(AttachmentRejected, match="not a file type"):
        store.check([("photo.png", b"MZ\x90\x00" + b"\x00" * 60)], limits)
    with pytest.raises(AttachmentRejected, match="empty"):
        store.check([("empty.txt", b"")], limits)


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
    store.check([(name, data)], Limits())  # the default policy renames, it does not refuse
    assert store.save(1, name, data).filename == stored


def test_a_tenant_may_refuse_names_that_could_run(tmp_path):
    store = AttachmentStore(tmp_path)
    refuse = Limits(dangerous_names=REFUSE)
    with pytest.raises(AttachmentRejected, match=r"page\.html is not accepted: .*run programs"):
        store.check([("page.html", b"<p>hi</p>")], refuse)
    with pytest.raises(AttachmentRejected, match="invoicefdp.bat is not accepted"):
        store.check([("invoice\u202efdp.bat", b"echo")], refuse)
    store.check([("notes.txt", b"fine")], refuse)


def test_the_policy_comes_from_the_tenant_settings():
    def tenant(**settings: object) -> Tenant:
        return Tenant(1, "acme", "Acme", settings=settings)

    assert Limits.for_tenant(tenant()).dangerous_names == RENAME
    assert Limits.for_tenant(tenant(attachment_dangerous_names=REFUSE)).dangerous_names == REFUSE
    assert Limits.for_tenant(tenant(attachment_dangerous_names="bogus")).dangerous_names == RENAME
