"""Languages: negotiation, the Babel catalogs, translation, and the request's language.

- Negotiation: `normalize_language` (aliases such as `no`, `zh-CN`), `negotiate` (Accept-Language),
  `page_language` (a request's: Accept-Language, else its tenant's default), `query_language`
  (`?lang=` when it names a supported language).
- Catalogs: `translations(language)`, compiled from the .po files on first use.
- Translation: `gettext`, `ngettext` and `N_` (mark only), in the current language.
- The current language: `LanguageMiddleware` sets it once per HTTP request (`page_language`);
  routes whose URL names a language answer in it (`language_from_query` here, the help center's
  path in `portal.kb.pages`). `use_language` is for text in a language other than the
  request's: a mail to a customer in theirs, a background task, a cache built per language.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.asgi_headers import header

LOCALES_DIR = Path(__file__).parent / "locales"

# URL/content language code -> Babel catalog name. The URL form is BCP 47 (what hreflang wants).
LANGUAGES: dict[str, str] = {
    "en": "en",
    "nb": "nb",
    "zh-Hans": "zh_Hans",
    "ja": "ja",
    "ar": "ar",
}
DEFAULT_LANGUAGE = "en"

_ALIASES = {
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "nb": "nb",
    "no": "nb",
    "nn": "nb",
    "nb-no": "nb",
    "no-no": "nb",
    "nn-no": "nb",
    "zh": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "zh-hans-cn": "zh-Hans",
    "zh_hans": "zh-Hans",
    "zh_cn": "zh-Hans",
    "ja": "ja",
    "ja-jp": "ja",
    "jp": "ja",
    # Browsers send Arabic with a region (ar-SA, ar-EG...); the catalog is Modern Standard Arabic,
    # which every region reads, so any `ar-*` falls back to it through the base-language rule.
    "ar": "ar",
    "ar-sa": "ar",
    "ar-eg": "ar",
    "ar-ae": "ar",
    "ar-ma": "ar",
    "ar-dz": "ar",
    "ar-jo": "ar",
    "ar-kw": "ar",
    "ar-qa": "ar",
    "ar-001": "ar",
}


def normalize_language(code: str) -> str | None:
    """Map `no`, `zh-CN`, `zh_Hans`, `ja-JP`... to one of LANGUAGES, or None if unsupported."""
    code = code.strip().replace("_", "-").lower()
    if code in _ALIASES:
        return _ALIASES[code]
    base = code.split("-", 1)[0]
    return _ALIASES.get(base) if base != "zh" else "zh-Hans"


def negotiate(accept_language: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The best supported language for an Accept-Language header, honouring q-values."""
    if not accept_language:
        return default
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag.strip() == "*" or quality <= 0:
            continue
        language = normalize_language(tag)
        if language:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else default


@cache
def translations(language: str) -> NullTranslations:
    """Gettext translations for a language, compiled from its .po file on first use."""
    catalog_name = LANGUAGES.get(language, "en")
    po_path = LOCALES_DIR / catalog_name / "LC_MESSAGES" / "messages.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=catalog_name)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@cache
def text_direction(language: str) -> str:
    """`rtl` or `ltr` for a language code, from CLDR; what pages put in `<html dir>`."""
    try:
        locale = Locale.parse(LANGUAGES.get(language, language).replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return "ltr"
    return locale.text_direction


@cache
def language_name(language: str) -> str:
    """The language's own name for itself, e.g. `norsk bokmål`, `日本語`."""
    return (
        Locale.parse(LANGUAGES.get(language, language).replace("-", "_")).display_name or language
    )


# Every request negotiates, and browsers send a handful of distinct headers: remembered, with
# a bound so that made-up headers cannot grow memory.
_negotiated = lru_cache(maxsize=1024)(negotiate)


# ------------------------------------------------------------------ the request's language
def _scope_language(scope: Scope) -> str:
    """`page_language` from the ASGI scope itself: no request object for every request."""
    raw = header(scope, b"accept-language")
    accept = raw.decode("latin-1") if raw is not None else None
    tenant = scope.get("state", {}).get("tenant")
    return _negotiated(accept, tenant.default_locale if tenant is not None else DEFAULT_LANGUAGE)


def page_language(connection: HTTPConnection) -> str:
    """The language for pages without one in their URL: Accept-Language, then the tenant's."""
    return _scope_language(connection.scope)


def query_language(request: Request) -> str | None:
    """`?lang=` when it names a supported language, else None."""
    # (Most requests have no query at all: no QueryParams parsed for them.)
    raw = request.query_params.get("lang", "") if request.scope["query_string"] else ""
    return normalize_language(raw) if raw else None


# None outside a request (and outside `use_language`): `gettext` then speaks DEFAULT_LANGUAGE,
# and `request_language` negotiates, e.g. for the unknown-host page made before the middleware.
_language: ContextVar[str | None] = ContextVar("language", default=None)


def current_language() -> str:
    """The language `gettext` translates into right now."""
    return _language.get() or DEFAULT_LANGUAGE


def request_language(connection: HTTPConnection) -> str:
    """The language this request is answered in: as set for it, else negotiated."""
    return _language.get() or page_language(connection)


class use_language:  # noqa: N801 (used as a function: `with use_language(lang):`)
    """Translate into `language` inside the block: for text not in the request's language.

    A class rather than a generator: every help center page enters one, and a generator's
    context manager costs several times as much."""

    __slots__ = ("_language", "_token")

    def __init__(self, language: str) -> None:
        self._language = language if language in LANGUAGES else DEFAULT_LANGUAGE

    def __enter__(self) -> None:
        self._token = _language.set(self._language)

    def __exit__(self, *exc: object) -> None:
        _language.reset(self._token)


def gettext(message: str) -> str:
    """Translate a message into the current language (the request's, unless `use_language`)."""
    return translations(current_language()).gettext(message)


def N_(message: str) -> str:  # noqa: N802 (the name Babel's extractor looks for)
    """Mark a message for the catalogs without translating it yet."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural translation for `n`, in the current language."""
    return translations(current_language()).ngettext(singular, plural, n)


class LanguageMiddleware:
    """Sets the language of each HTTP request once, before its handler: `page_language`.

    Inside the tenancy middleware, so the tenant's default language is known. Handlers, the
    pages they render and the messages they make in Python all speak it without asking again.
    (Websockets are left alone: the chat's frames carry the visitor's language themselves.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Catalogs are compiled from the .po files (~15 ms each) and CLDR read on first use:
        # done here, as the app starts, not in the first request of each language, which every
        # request in flight would wait for.
        for language in LANGUAGES:
            translations(language)
            text_direction(language)
            language_name(language)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _language.set(_scope_language(scope))
        try:
            await self.app(scope, receive, send)
        finally:
            _language.reset(token)


Endpoint = Callable[[Request], Awaitable[Response]]


def language_from_query(handler: Endpoint) -> Endpoint:
    """Endpoint decorator: answer in `?lang=` when it names a supported language.

    Links that carry a visitor's chosen language (the help center's "Contact us", a form's
    thanks page, the widget's frames) keep it over what the browser asks for.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        language = query_language(request)
        if language is None:  # the middleware set the request's language (`page_language`)
            return await handler(request)
        with use_language(language):
            return await handler(request)

    return endpoint
