"""Uploaded files: checked by content (not by name), limited per tenant, stored by digest."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import filetype

from portal.core.contract import AttachmentDraft, Tenant
from portal.templating import gettext
from portal.text import is_invisible, strip_format

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
# The extension to add to a file of each accepted type whose name would make it run when opened.
SAFE_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "application/zip": "zip",
}
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_COUNT = 5

# Names whose extension makes a desktop open the file by running it, or a browser render it as
# a page with scripts. The content check lets such files in as plain text (a script, a page, an
# SVG) or as ZIP (a .jar, an Office file with macros), so the name is what must change.
DANGEROUS_EXTENSIONS = frozenset(
    """
    svg svgz html htm xhtml xht shtml mht mhtml xml xsl xslt hta htc
    js mjs cjs jse vbs vbe vb wsf wsh ws sct
    bat cmd com exe scr pif cpl dll msi msp msc inf reg scf lnk url website
    ps1 psm1 psd1 ps1xml psc1 application appref-ms gadget chm hlp jnlp jar
    sh bash zsh csh ksh command desktop app action workflow scpt applescript pkg dmg
    php phtml php3 php4 php5 phar asp aspx jsp cgi pl py pyw rb
    docm dotm xlsm xltm xlam pptm potm ppam sldm swf
    """.split()
)
# What an upload with such a name gets (tenant setting `attachment_dangerous_names`).
RENAME = "rename"  # the safe extension of its real type is appended: page.html -> page.html.txt
REFUSE = "refuse"  # it is refused with a message
DANGEROUS_NAME_POLICIES = (RENAME, REFUSE)
DEFAULT_DANGEROUS_NAMES = RENAME


class AttachmentRejected(ValueError):
    """A file the tenant's rules do not accept; the message is for the visitor."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_count: int = DEFAULT_MAX_COUNT
    dangerous_names: str = DEFAULT_DANGEROUS_NAMES  # one of DANGEROUS_NAME_POLICIES

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> Limits:
        settings = tenant.settings
        policy = settings.get("attachment_dangerous_names", DEFAULT_DANGEROUS_NAMES)
        return cls(
            int(settings.get("attachment_max_bytes", DEFAULT_MAX_BYTES)),
            int(settings.get("attachment_max_count", DEFAULT_MAX_COUNT)),
            policy if policy in DANGEROUS_NAME_POLICIES else DEFAULT_DANGEROUS_NAMES,
        )


def safe_filename(name: str) -> str:
    """The last path part of a browser-supplied name, without control or separator characters.

    Bidi controls and other format characters are dropped: "invoice\u202efdp.bat" would be shown
    as "invoicetab.pdf" while being a .bat file.
    """
    name = strip_format(unicodedata.normalize("NFC", name or ""))
    name = PureWindowsPath(PurePosixPath(name).name).name  # "..\\..\\x" and "../x" alike
    name = "".join("_" if is_invisible(ch) else ch for ch in name)
    name = re.sub(r"[/\\:*?\"<>|]", "_", name).strip(" .")
    return name[:200] or "file"


def is_dangerous_name(name: str) -> bool:
    """Whether the (safe_filename'd) name's extension makes the file run or render when opened."""
    stem, dot, extension = name.rpartition(".")
    return bool(dot and stem) and extension.lower() in DANGEROUS_EXTENSIONS


def stored_filename(name: str, content_type: str | None) -> str:
    """The name a file is stored and offered under: safe_filename's, and for a name that could
    run when opened, with the extension of its real type added, so saving it never makes it
    runnable (page.html -> page.html.txt)."""
    name = safe_filename(name)
    if is_dangerous_name(name):
        name = f"{name[:190]}.{SAFE_EXTENSIONS.get(content_type or '', 'txt')}"
    return name


def dangerous_name_message(name: str) -> str:
    """Why a file with a dangerous name is refused, in the visitor's language."""
    return gettext("%(name)s is not accepted: files of this kind can run programs when opened.") % {
        "name": safe_filename(name)
    }


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
        """Raise AttachmentRejected for too many, too big or disallowed files (and for names that
        could run when opened, when the tenant refuses those; else `save` renames them)."""
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
            if limits.dangerous_names == REFUSE and is_dangerous_name(safe_filename(name)):
                raise AttachmentRejected(dangerous_name_message(name))

    def save(self, tenant_id: int, name: str, data: bytes) -> AttachmentDraft:
        """Store checked bytes; returns what the core records, under a name safe to open."""
        digest = hashlib.sha256(data).hexdigest()
        folder = self.root / str(tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / digest
        if not path.exists():
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a reader never sees half a file
        content_type = sniff(data) or "application/octet-stream"
        return AttachmentDraft(stored_filename(name, content_type), content_type, len(data), digest)

    def path(self, tenant_id: int, storage_key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", storage_key):
            raise FileNotFoundError(storage_key)
        return self.root / str(tenant_id) / storage_key
