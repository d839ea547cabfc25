"""Jinja2 environment: overridable templates, pages in the request's language, tenant branding."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from jinja2.runtime import Context
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from portal.core.contract import Capabilities
from portal.i18n import (
    LANGUAGES,
    current_language,
    gettext,
    language_name,
    ngettext,
    request_language,
    text_direction,
    use_language,
)
from portal.navigation import site_nav
from portal.resources import TEMPLATES_DIR
from portal.services import services
from portal.urls import path_for

# How often a template's file is looked at again: an edited override shows within this long,
# and a page (three templates) costs no `stat` calls in between.
RECHECK_S = 1.0
# Translated texts kept for templates, per language; far more than the templates hold, a bound
# only against `_(some_variable)`.
MAX_KEPT_MESSAGES = 4096


class _FileLoader(jinja2.FileSystemLoader):
    """`FileSystemLoader` whose templates look at their file's time at most every RECHECK_S."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        checked_at, current = time.monotonic(), True

        def up_to_date() -> bool:
            nonlocal checked_at, current
            now = time.monotonic()
            if now - checked_at >= RECHECK_S:
                checked_at, current = now, uptodate()
            return current

        return source, filename, up_to_date


def _kept_gettext() -> Callable[..., str]:
    """Jinja's newstyle `gettext`, with each text without variables translated once per language.

    Jinja's own makes a `Markup` and formats it on every call (5-8 us each, dozens a page); the
    catalogs never change while the app runs, so the result is kept.
    """
    kept: dict[tuple[str, str], str] = {}

    @jinja2.pass_context
    def template_gettext(context: Context, message: str, /, **variables: Any) -> str:
        if variables or not context.eval_ctx.autoescape:
            text = gettext(message)
            # Always a format string, as Jinja's newstyle gettext has it ("%%" is "%").
            return (Markup(text) if context.eval_ctx.autoescape else text) % variables
        key = (current_language(), message)
        found = kept.get(key)
        if found is None:
            if len(kept) >= MAX_KEPT_MESSAGES:
                kept.clear()
            found = kept[key] = Markup(gettext(message)) % {}
        return found

    return template_gettext


def compile_all(env: jinja2.Environment) -> None:
    """Compile (and keep) every template by its own name (not again as "default:NAME")."""
    for name in env.list_templates():
        if ":" not in name:
            env.get_template(name)


def make_templates(override_dir: Path | None = None) -> Jinja2Templates:
    """Templates from `override_dir` first; `{% extends "default:base.html" %}` reaches ours."""
    ours = _FileLoader(str(TEMPLATES_DIR))
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(_FileLoader(str(override_dir)))
    loaders += [jinja2.PrefixLoader({"default": ours}, delimiter=":"), ours]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    # `_` straight to the kept gettext: Jinja's `_` looks `gettext` up in the context per call.
    env.globals["gettext"] = env.globals["_"] = _kept_gettext()
    env.globals["language_name"] = language_name
    # `<html dir="{{ text_direction(lang) }}">`: the stylesheets use logical properties, so this
    # one attribute mirrors a page for right-to-left languages.
    env.globals["text_direction"] = text_direction
    env.globals["LANGUAGES"] = LANGUAGES
    templates = Jinja2Templates(env=env)
    env.globals["url_for"] = _url_for  # paths, cached; replaces Starlette's uncached absolute URLs
    env.globals["core_capabilities"] = _core_capabilities
    return templates


@jinja2.pass_context
def _url_for(context: dict[str, Any], name: str, /, **params: Any) -> str:
    return path_for(context["request"], name, **params)


@jinja2.pass_context
def _core_capabilities(context: dict[str, Any]) -> Capabilities:
    """What the app's core offers, for templates that hide what it lacks (the chat menu)."""
    return services(context["request"]).core.capabilities


def render_html(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    language: str | None = None,
) -> str:
    """A page's HTML in `language` (else the request's), with the tenant's branding in context.

    For handlers that keep what they render (`portal.kb.pages`); the others call `render`.
    """
    context = dict(context or {})
    language = language or context.get("lang") or request_language(request)
    context.setdefault("lang", language)
    tenant = context.setdefault("tenant", request.scope.get("state", {}).get("tenant"))
    context.setdefault("request", request)  # templates' `url_for` finds the app through it
    template = services(request).templates.env.get_template(name)
    with use_language(language):
        if tenant is not None:
            # Its header: read by `NavigationMiddleware` before the handler, built here.
            context.setdefault("site_nav", site_nav(request, language))
        return template.render(context)


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    language: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page in `language` (else the request's), with the tenant's branding in context."""
    html = render_html(request, name, context, language=language)
    return HTMLResponse(html, status_code=status_code, headers=headers)
