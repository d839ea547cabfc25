"""Uploaded files: checked by content (not by name), limited per tenant, stored by digest."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import filetype

from portal.core.contract import AttachmentDraft, Tenant

# What customers may send, by sniffed content type. Text has no magic bytes; see _sniff.
ALLOWED_TYPES = {
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/zip",
}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_COUNT = 5


class AttachmentRejected(ValueError):
    """A file the tenant's rules do not accept; the message is for the visitor."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_count: int = DEFAULT_MAX_COUNT

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> Limits:
        settings = tenant.settings
        return cls(
            int(settings.get("attachment_max_bytes", DEFAULT_MAX_BYTES)),
            int(settings.get("attachment_max_count", DEFAULT_MAX_COUNT)),
        )


def safe_filename(name: str) -> str:
    """The last path part of a browser-supplied name, without control or separator characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = PureWindowsPath(PurePosixPath(name).name).name  # "..\\..\\x" and "../x" alike
    name = re.sub(r"[\x00-\x1f\x7f/\\:*?\"<>|]", "_", name).strip(" .")
    return name[:200] or "file"


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are, or None when it is not one we know."""
    kind = filetype.guess(data[:8192])
    if kind is not None:
        return kind.mime
    if b"\x00" in data[:8192]:
        return None
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 8188:  # a multibyte character cut at the 8 KiB boundary is fine
            return None
    return "text/plain"


class AttachmentStore:
    """Files on disk under `root/{tenant_id}/{sha256}`; the same bytes are stored once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def check(self, files: list[tuple[str, bytes]], limits: Limits) -> None:
        """Raise AttachmentRejected for too many, too big or disallowed files."""
        if len(files) > limits.max_count:
            raise AttachmentRejected(f"Attach at most {limits.max_count} files.")
        for name, data in files:
            if len(data) > limits.max_bytes:
                mb = limits.max_bytes / (1024 * 1024)
                raise AttachmentRejected(f"{safe_filename(name)} is larger than {mb:g} MB.")
            if not data:
                raise AttachmentRejected(f"{safe_filename(name)} is empty.")
            if sniff(data) not in ALLOWED_TYPES:
                raise AttachmentRejected(
                    f"{safe_filename(name)} is not a file type we accept "
                    "(images, PDF, plain text or ZIP)."
                )

    def save(self, tenant_id: int, name: str, data: bytes) -> AttachmentDraft:
        """Store checked bytes; returns what the core records."""
        digest = hashlib.sha256(data).hexdigest()
        folder = self.root / str(tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / digest
        if not path.exists():
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a reader never sees half a file
        return AttachmentDraft(
            safe_filename(name), sniff(data) or "application/octet-stream", len(data), digest
        )

    def path(self, tenant_id: int, storage_key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", storage_key):
            raise FileNotFoundError(storage_key)
        return self.root / str(tenant_id) / storage_key
