"""Files customers and agents send: the upload policy, the store, and the download answer.

- Policy: what an upload may be, by content (sniffed once per file: `Upload.content_type`), not
  by name; how many and how large, per tenant (`Limits`); names that could run when opened,
  renamed or refused (`stored_filename`, the tenant's `attachment_dangerous_names`). `refusals`
  is the one check (messages in the current language) that forms, the portal's replies and the
  chat's uploads all go through.
- Store: `AttachmentStore`, files on disk by digest, the same bytes stored once.
- Download: `download_response`, the one way a stored file is sent back, never shown inline.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import quote

import filetype
from starlette.responses import FileResponse

from portal.core.contract import Attachment, AttachmentDraft, Capabilities, Tenant
from portal.i18n import gettext, ngettext
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
class Upload:
    """One uploaded file: the input it came from, the browser's name for it, its bytes.

    Read at most the tenant's size limit plus one byte: one byte past it is enough to refuse it.
    """

    field: str
    filename: str
    data: bytes

    @functools.cached_property
    def content_type(self) -> str | None:
        """The type the bytes really are, or None when we do not know it.

        Sniffed on first use and kept: the check reads it and the store files it."""
        return sniff(self.data)


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


def upload_limits(tenant: Tenant, capabilities: Capabilities) -> Limits:
    """The tenant's limits; no files at all (`max_count` 0) when the core keeps no attachments.

    Pages show file inputs only while `max_count` allows a file, and a file sent anyway is
    refused like one too many.
    """
    limits = Limits.for_tenant(tenant)
    return limits if capabilities.attachments else replace(limits, max_count=0)


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

    def save(
        self, tenant_id: int, name: str, data: bytes, content_type: str | None = None
    ) -> AttachmentDraft:
        """Store checked bytes; returns what the core records, under a name safe to open.

        `content_type` is the type `sniff` found, when the caller sniffed the bytes already."""
        digest = hashlib.sha256(data).hexdigest()
        folder = self.root / str(tenant_id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / digest
        if not path.exists():
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a reader never sees half a file
        content_type = content_type or sniff(data) or "application/octet-stream"
        return AttachmentDraft(stored_filename(name, content_type), content_type, len(data), digest)

    def path(self, tenant_id: int, storage_key: str) -> Path:
        """Where a file is kept; FileNotFoundError for a key that is no digest."""
        if not re.fullmatch(r"[0-9a-f]{64}", storage_key):
            raise FileNotFoundError(storage_key)
        return self.root / str(tenant_id) / storage_key

    def stored(self, tenant_id: int, storage_key: str) -> Path | None:
        """The file of a recorded attachment, or None when it is not (or no longer) on disk."""
        try:
            path = self.path(tenant_id, storage_key)
        except FileNotFoundError:
            return None
        return path if path.is_file() else None


# ------------------------------------------------------------------ the check
def human_size(size: int) -> str:
    """A size as people read it: `10 MB`, `1.5 KB`, `200 B`."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    if size >= 1024:
        return f"{size / 1024:g} KB"
    return f"{size} B"


def refusals(uploads: Sequence[Upload], limits: Limits, *, count_field: str) -> dict[str, str]:
    """Why files are refused, in the current language, keyed by the input each came in.

    Size, emptiness and type (by content) of each file, names that could run when opened when
    the tenant refuses those (else `save` renames them), and the count, whose message goes under
    `count_field` unless a file of that input was refused already. Empty: all accepted.
    """
    errors: dict[str, str] = {}
    for upload in uploads:
        if upload.field in errors:
            continue
        name = safe_filename(upload.filename)
        if len(upload.data) > limits.max_bytes:
            errors[upload.field] = gettext("%(name)s is larger than %(size)s.") % {
                "name": name,
                "size": human_size(limits.max_bytes),
            }
        elif not upload.data:
            errors[upload.field] = gettext("%(name)s is empty.") % {"name": name}
        elif upload.content_type not in ALLOWED_TYPES:
            errors[upload.field] = gettext(
                "%(name)s is not a file type we accept (images, PDF, plain text or ZIP)."
            ) % {"name": name}
        elif limits.dangerous_names == REFUSE and is_dangerous_name(name):
            errors[upload.field] = dangerous_name_message(name)
    if len(uploads) > limits.max_count:
        errors.setdefault(
            count_field,
            ngettext(
                "Attach at most %(num)d file.", "Attach at most %(num)d files.", limits.max_count
            )
            % {"num": limits.max_count},
        )
    return errors


def check(uploads: Sequence[Upload], limits: Limits) -> None:
    """Raise AttachmentRejected with the first of `refusals`: for answers with one message."""
    found = refusals(uploads, limits, count_field="")
    if found:
        raise AttachmentRejected(next(iter(found.values())))


# ------------------------------------------------------------------ the download
# What every stored file is sent with: always a download, never rendered by the browser (nor
# sniffed into HTML), scripts and plugins off even if it were, and kept in no shared cache.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}


def content_disposition(filename: str) -> str:
    """`attachment` with the name twice (RFC 6266): plain ASCII for old clients, and UTF-8."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = re.sub(r'[^\x20-\x7e]|["\\%;]', "_", fallback).strip() or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_response(path: Path, attachment: Attachment) -> FileResponse:
    """The answer for a stored file: the portal's, the console's and the chat's download."""
    headers = DOWNLOAD_HEADERS | {
        "Content-Disposition": content_disposition(attachment.filename or "file")
    }
    media_type = attachment.content_type or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers=headers)
