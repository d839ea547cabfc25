"""Jinja2 environment: overridable templates, per-request language, tenant branding."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from portal.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    language_name,
    negotiate,
    text_direction,
    translations,
)
from portal.resources import TEMPLATES_DIR
from portal.urls import path_for

_language: ContextVar[str] = ContextVar("language", default=DEFAULT_LANGUAGE)


def gettext(message: str) -> str:
    """Translate a message into the language of the page being rendered."""
    return translations(_language.get()).gettext(message)


def N_(message: str) -> str:  # noqa: N802 (the name Babel's extractor looks for)
    """Mark a message for the catalogs without translating it yet."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural translation for `n`, in the page's language."""
    return translations(_language.get()).ngettext(singular, plural, n)


@contextmanager
def use_language(language: str) -> Iterator[None]:
    token = _language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)
    try:
        yield
    finally:
        _language.reset(token)


def make_templates(override_dir: Path | None = None) -> Jinja2Templates:
    """Templates from `override_dir` first; `{% extends "default:base.html" %}` reaches ours."""
    ours = jinja2.FileSystemLoader(str(TEMPLATES_DIR))
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders += [jinja2.PrefixLoader({"default": ours}, delimiter=":"), ours]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["language_name"] = language_name
    # `<html dir="{{ text_direction(lang) }}">`: the stylesheets use logical properties, so this
    # one attribute mirrors a page for right-to-left languages.
    env.globals["text_direction"] = text_direction
    env.globals["LANGUAGES"] = LANGUAGES
    templates = Jinja2Templates(env=env)
    env.globals["url_for"] = _url_for  # paths, cached; replaces Starlette's uncached absolute URLs
    return templates


@jinja2.pass_context
def _url_for(context: dict[str, Any], name: str, /, **params: Any) -> str:
    return path_for(context["request"], name, **params)


def page_language(request: Request) -> str:
    """The language for pages without one in their URL: Accept-Language, then the tenant's."""
    tenant = getattr(request.state, "tenant", None)
    default = tenant.default_locale if tenant is not None else DEFAULT_LANGUAGE
    return negotiate(request.headers.get("accept-language"), default)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    language: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page in `language` (else negotiated), with the tenant's branding in context."""
    context = dict(context or {})
    language = language or context.get("lang") or page_language(request)
    context.setdefault("lang", language)
    context.setdefault("tenant", getattr(request.state, "tenant", None))
    if context["tenant"] is not None:
        return _SitePage(request, name, context, language, status_code, headers)
    templates: Jinja2Templates = request.state.templates
    with use_language(language):
        return templates.TemplateResponse(
            request, name, context, status_code=status_code, headers=headers
        )


class _SitePage(HTMLResponse):
    """A tenant's page, rendered as it is sent: its header navigation needs an awaited read.

    Handlers build pages without awaiting, and headers they add afterwards (cookies, CSP) stay;
    only the body and its length are filled in here, after `portal.navigation.prepare`.
    """

    def __init__(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        language: str,
        status_code: int,
        headers: dict[str, str] | None,
    ) -> None:
        super().__init__(None, status_code=status_code, headers=headers)
        self._page = (request, name, context, language)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from portal.navigation import prepare, site_nav  # it imports this module

        request, name, context, language = self._page
        await prepare(request)
        templates: Jinja2Templates = request.state.templates
        with use_language(language):
            context.setdefault("site_nav", site_nav(request, language))
            context.setdefault("request", request)
            self.body = self.render(templates.get_template(name).render(context))
        self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)
