"""The admin area's route table, mounted at `/admin`; one handler module per page or group.

Every page but the login page and the first admin's welcome link needs a signed-in agent with
role "admin" (see `auth.py` for the session, CSRF and throttle). Forms answer 400 with per-field
errors and the submitted values kept; a successful POST redirects (303) to a page that shows a
flash message.
"""

from __future__ import annotations

from starlette.routing import Route

from portal.admin.apps import apps
from portal.admin.articles import article_edit, article_new, articles
from portal.admin.branding import branding
from portal.admin.categories import categories, category, category_delete
from portal.admin.chat import canned_add, canned_delete, chat_settings
from portal.admin.dashboard import dashboard
from portal.admin.domains import domain_check, domain_remove, domains
from portal.admin.form_builder import departments, form_delete, form_edit, form_new, forms_list
from portal.admin.login import login, logout, logout_everywhere
from portal.admin.outbox import outbox_discard, outbox_page, outbox_retry
from portal.admin.settings import settings
from portal.admin.welcome import welcome
from portal.admin.widget import widget_settings
from portal.admin.widget_keys import widget_key_delete, widget_keys

routes = [
    Route("/", dashboard, name="admin_home"),
    Route("/login", login, methods=["GET", "POST"], name="admin_login"),
    Route("/welcome/{token}", welcome, methods=["GET", "POST"], name="admin_welcome"),
    Route("/logout", logout, methods=["POST"], name="admin_logout"),
    Route(
        "/logout-everywhere",
        logout_everywhere,
        methods=["POST"],
        name="admin_logout_everywhere",
    ),
    Route("/branding", branding, methods=["GET", "POST"], name="admin_branding"),
    Route("/categories", categories, methods=["GET", "POST"], name="admin_categories"),
    Route("/categories/{id:int}", category, methods=["GET", "POST"], name="admin_category"),
    Route(
        "/categories/{id:int}/delete",
        category_delete,
        methods=["POST"],
        name="admin_category_delete",
    ),
    Route("/articles", articles, name="admin_articles"),
    Route("/articles/new", article_new, methods=["GET", "POST"], name="admin_article_new"),
    Route("/articles/{id:int}", article_edit, methods=["GET", "POST"], name="admin_article_edit"),
    Route("/forms", forms_list, name="admin_forms"),
    Route("/forms/new", form_new, methods=["GET", "POST"], name="admin_form_new"),
    Route("/forms/{id:int}", form_edit, methods=["GET", "POST"], name="admin_form_edit"),
    Route("/forms/{id:int}/delete", form_delete, methods=["POST"], name="admin_form_delete"),
    Route("/departments", departments, methods=["GET", "POST"], name="admin_departments"),
    Route("/chat", chat_settings, methods=["GET", "POST"], name="admin_chat"),
    Route("/chat/canned", canned_add, methods=["POST"], name="admin_canned_add"),
    Route(
        "/chat/canned/{id:int}/delete",
        canned_delete,
        methods=["POST"],
        name="admin_canned_delete",
    ),
    Route("/widget/keys", widget_keys, methods=["GET", "POST"], name="admin_widget_keys"),
    Route(
        "/widget/keys/{id:int}/delete",
        widget_key_delete,
        methods=["POST"],
        name="admin_widget_key_delete",
    ),
    Route("/settings", settings, methods=["GET", "POST"], name="admin_settings"),
    Route("/widget", widget_settings, methods=["GET", "POST"], name="admin_widget"),
    Route("/apps", apps, methods=["GET", "POST"], name="admin_apps"),
    Route("/domains", domains, methods=["GET", "POST"], name="admin_domains"),
    Route("/domains/check", domain_check, methods=["POST"], name="admin_domain_check"),
    Route("/domains/remove", domain_remove, methods=["POST"], name="admin_domain_remove"),
    Route("/outbox", outbox_page, name="admin_outbox"),
    Route("/outbox/retry", outbox_retry, methods=["POST"], name="admin_outbox_retry"),
    Route("/outbox/discard", outbox_discard, methods=["POST"], name="admin_outbox_discard"),
]
