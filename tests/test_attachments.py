import pytest

from portal.attachments import AttachmentRejected, AttachmentStore, Limits, safe_filename, sniff

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
