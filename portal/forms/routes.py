"""The web forms' route table: the page (`pages.py`) and the JSON API (`api.py`)."""

from __future__ import annotations

from starlette.routing import Route

from portal.forms.api import api_deflections, api_form, api_submit, api_suggestions
from portal.forms.pages import form_page, form_submit, form_thanks

routes = [
    Route("/forms/{form_id:int}", form_page, methods=["GET"], name="forms_page"),
    Route("/forms/{form_id:int}", form_submit, methods=["POST"], name="forms_submit"),
    Route("/forms/{form_id:int}/thanks", form_thanks, methods=["GET"], name="forms_thanks"),
    Route("/api/forms/{form_id:int}", api_form, methods=["GET", "OPTIONS"], name="forms_api_form"),
    Route(
        "/api/forms/{form_id:int}/submissions",
        api_submit,
        methods=["POST", "OPTIONS"],
        name="forms_api_submit",
    ),
    Route(
        "/api/forms/{form_id:int}/suggestions",
        api_suggestions,
        methods=["GET", "OPTIONS"],
        name="forms_api_suggestions",
    ),
    Route(
        "/api/forms/{form_id:int}/deflections",
        api_deflections,
        methods=["POST", "OPTIONS"],
        name="forms_api_deflections",
    ),
]
