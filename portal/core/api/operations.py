"""The core API's operations: one table that the server's routes, the OpenAPI document and the
remote client are all built from.

Each row names a contract method (domain and method) and its HTTP method and path under
`/core/v1`. Everything else comes from the protocol's signature (`typing.get_type_hints`): names
in the path are path parameters; the other arguments of a read (GET, DELETE) are query
parameters, those of a write are members of a JSON body (or, when the only one is a dataclass,
the body itself); an `idempotency_key` argument is filled from the `Idempotency-Key` header; and
`tenant_id` is never a parameter: it comes from the caller's key.

Not exposed, because they span tenants and a key speaks for one: `create_tenant`,
`list_tenants`, `claim_domains_to_check` and `post_chat_messages` (a batch across tenants; the
remote client posts each message on its own). `get_tenant` and `get_tenant_by_domain` answer
only the key's own tenant (404 for any other).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, create_model

from portal.core.api.wire import adapter
from portal.core.contract import DOMAINS

PREFIX = "/core/v1"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_VERBS = frozenset({"GET", "DELETE"})  # arguments in the query string
IDEMPOTENCY_ARG = "idempotency_key"
TENANT_ARG = "tenant_id"

# Bounds on top-level integers, so that no value reaches the database that it cannot hold
# (PostgreSQL's INTEGER) or that would make a query meaningless (a negative offset).
INT32 = 2**31 - 1
_INT_BOUNDS: dict[str, tuple[int, int]] = {
    "limit": (0, 1000),
    "offset": (0, INT32),
    "cursor": (0, INT32),
    "after_id": (0, INT32),
    "message_id": (0, INT32),
}
_PATH_PARAM = re.compile(r"{(\w+)}")

Location = Literal["path", "query", "body", "header"]


@dataclass(frozen=True)
class Param:
    name: str
    annotation: Any
    required: bool
    default: Any
    location: Location


@dataclass(frozen=True)
class Operation:
    domain: str  # HelpdeskCore's attribute: "tickets"
    method: str  # the contract method: "create_ticket"
    verb: str  # "GET", "POST", ...
    path: str  # under PREFIX, OpenAPI style: "/tickets/{ticket_id}/replies"
    summary: str = ""
    # The answer must be this tenant's (get_tenant*): checked on `result.id` after the call.
    own_tenant_result: bool = False
    operation_id: str = ""
    # Arguments this operation leaves at their default (`form_id` of the POST that creates).
    fixed: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.operation_id or self.method

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @cached_property
    def _signature(self) -> tuple[dict[str, Any], inspect.Signature]:
        function = getattr(DOMAINS[self.domain], self.method)
        return typing.get_type_hints(function), inspect.signature(function)

    @cached_property
    def takes_tenant(self) -> bool:
        return TENANT_ARG in self._signature[1].parameters

    @cached_property
    def params(self) -> tuple[Param, ...]:
        hints, signature = self._signature
        in_path = set(_PATH_PARAM.findall(self.path))
        params = []
        for name, parameter in signature.parameters.items():
            if name in ("self", TENANT_ARG) or name in self.fixed:
                continue
            if name == IDEMPOTENCY_ARG:
                location: Location = "header"
            elif name in in_path:
                location = "path"
            elif self.verb in READ_VERBS:
                location = "query"
            else:
                location = "body"
            required = parameter.default is inspect.Parameter.empty
            default = None if required else parameter.default
            params.append(Param(name, hints[name], required, default, location))
        missing = in_path - {p.name for p in params if p.location == "path"}
        assert not missing, f"{self.method}: {missing} in the path but not in the signature"
        return tuple(params)

    @cached_property
    def result_type(self) -> Any:
        return self._signature[0]["return"]

    @property
    def idempotency_param(self) -> bool:
        return any(p.location == "header" for p in self.params)

    def located(self, location: Location) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.location == location)

    @cached_property
    def route_path(self) -> str:
        """The Starlette path: integer path parameters use the `int` convertor."""

        def convert(match: re.Match[str]) -> str:
            param = next(p for p in self.params if p.name == match[1])
            is_int = _without_none(param.annotation) is int
            return f"{{{match[1]}:int}}" if is_int else match[0]

        return PREFIX + _PATH_PARAM.sub(convert, self.path)

    @cached_property
    def body_param(self) -> Param | None:
        """The one dataclass argument that is the whole body, if that is the body's shape."""
        body = self.located("body")
        if len(body) == 1 and dataclasses.is_dataclass(body[0].annotation):
            return body[0]
        return None

    @cached_property
    def path_adapter(self) -> TypeAdapter[Any] | None:
        return _model_adapter(f"{_camel(self.id)}Path", self.located("path"), strip_none=True)

    @cached_property
    def query_adapter(self) -> TypeAdapter[Any] | None:
        return _model_adapter(f"{_camel(self.id)}Query", self.located("query"), optional=True)

    @cached_property
    def body_adapter(self) -> TypeAdapter[Any] | None:
        if self.body_param is not None:
            return adapter(self.body_param.annotation)
        return _model_adapter(f"{_camel(self.id)}Body", self.located("body"))

    @cached_property
    def result_adapter(self) -> TypeAdapter[Any]:
        return adapter(self.result_type)

    @property
    def returns_nothing(self) -> bool:
        return self.result_type is type(None)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _bounded(name: str, annotation: Any) -> Any:
    """`int` (or `int | None`) with bounds the database can hold."""
    low, high = _INT_BOUNDS.get(name, (-INT32 - 1, INT32))
    if annotation is int:
        return Annotated[int, Field(ge=low, le=high)]
    if _without_none(annotation) is int and annotation is not int:
        return Annotated[int, Field(ge=low, le=high)] | None
    return annotation


def _model_adapter(
    name: str, params: tuple[Param, ...], *, optional: bool = False, strip_none: bool = False
) -> TypeAdapter[Any] | None:
    """A model of the parameters (validation with one error per field, and a JSON Schema).

    In a query string an absent value is the default, so `optional` drops `None` from the
    types there: a client never has to spell "null" in a URL.
    """
    if not params:
        return None
    fields: dict[str, Any] = {}
    for param in params:
        strip = optional or strip_none
        annotation = _without_none(param.annotation) if strip else param.annotation
        annotation = _bounded(param.name, annotation)
        if optional and not param.required:
            annotation = annotation | None
        required = param.required or strip_none
        fields[param.name] = (annotation, ... if required else param.default)
    model = create_model(name, __config__=ConfigDict(extra="forbid"), **fields)
    return TypeAdapter(model)


def _op(domain: str, method: str, verb: str, path: str, **extra: Any) -> Operation:
    return Operation(domain, method, verb, path, **extra)


OPERATIONS: tuple[Operation, ...] = (
    # tenants: only the key's own
    _op("tenants", "get_tenant", "GET", "/tenants/{slug}", own_tenant_result=True),
    _op(
        "tenants",
        "get_tenant_by_domain",
        "GET",
        "/tenants/by-domain/{domain}",
        own_tenant_result=True,
    ),
    _op("tenants", "update_branding", "PUT", "/branding"),
    _op("tenants", "update_tenant_settings", "PATCH", "/settings"),
    _op("tenants", "list_domains", "GET", "/domains"),
    _op("tenants", "add_domain", "POST", "/domains"),
    _op("tenants", "set_domain_status", "PUT", "/domains/{domain}/status"),
    _op("tenants", "remove_domain", "DELETE", "/domains/{domain}"),
    _op("tenants", "list_agents", "GET", "/agents"),
    _op("tenants", "create_agent", "POST", "/agents"),
    _op("tenants", "get_agent_by_email", "GET", "/agents/by-email"),
    _op("tenants", "get_agent", "GET", "/agents/{agent_id}"),
    _op("tenants", "set_agent_password", "PUT", "/agents/{agent_id}/password"),
    # knowledge base
    _op("kb", "list_categories", "GET", "/kb/categories"),
    _op("kb", "ensure_category", "POST", "/kb/categories"),
    _op("kb", "get_category_by_slug", "GET", "/kb/categories/by-slug/{language}/{slug}"),
    _op("kb", "get_category", "GET", "/kb/categories/{category_id}"),
    _op("kb", "update_category", "PUT", "/kb/categories/{category_id}"),
    _op("kb", "delete_category", "DELETE", "/kb/categories/{category_id}"),
    _op("kb", "list_articles", "GET", "/kb/articles"),
    _op("kb", "save_article", "POST", "/kb/articles"),
    _op("kb", "articles_changed_since", "GET", "/kb/articles/changed"),
    _op("kb", "most_viewed", "GET", "/kb/articles/most-viewed"),
    _op("kb", "get_article_by_slug", "GET", "/kb/articles/by-slug/{language}/{slug}"),
    _op("kb", "translations", "GET", "/kb/articles/translations/{slug}"),
    _op("kb", "get_article", "GET", "/kb/articles/{article_id}"),
    _op("kb", "update_article", "PUT", "/kb/articles/{article_id}"),
    _op("kb", "add_article_views", "POST", "/kb/article-views"),
    _op("kb", "record_feedback", "POST", "/kb/feedback"),
    _op("kb", "feedback_summary", "GET", "/kb/feedback/summary"),
    _op("kb", "record_missed_search", "POST", "/kb/missed-searches"),
    _op("kb", "missed_searches", "GET", "/kb/missed-searches"),
    # customers, organizations, sessions, widget identity
    _op("customers", "ensure_customer", "POST", "/customers"),
    _op("customers", "find_customer", "GET", "/customers/by-email"),
    _op("customers", "identified_customer", "POST", "/customers/identified"),
    _op("customers", "get_customer", "GET", "/customers/{customer_id}"),
    _op(
        "customers",
        "set_customer_organization",
        "PUT",
        "/customers/{customer_id}/organization",
    ),
    _op(
        "customers",
        "verify_customer_email",
        "POST",
        "/customers/{customer_id}/email-verification",
    ),
    _op("customers", "create_organization", "POST", "/organizations"),
    _op("customers", "spend_token", "POST", "/spent-tokens"),
    _op("customers", "create_session", "POST", "/sessions"),
    _op("customers", "end_sessions", "DELETE", "/sessions"),
    _op("customers", "get_session", "GET", "/sessions/{session_id}"),
    _op("customers", "end_session", "DELETE", "/sessions/{session_id}"),
    _op("customers", "list_widget_keys", "GET", "/widget-keys"),
    _op("customers", "add_widget_key", "POST", "/widget-keys"),
    _op("customers", "delete_widget_key", "DELETE", "/widget-keys/{key_id}"),
    # tickets
    _op("tickets", "list_tickets", "GET", "/tickets"),
    _op("tickets", "create_ticket", "POST", "/tickets"),
    _op("tickets", "get_ticket", "GET", "/tickets/{ticket_id}"),
    _op("tickets", "set_ticket_status", "PUT", "/tickets/{ticket_id}/status"),
    _op("tickets", "assign_ticket", "PUT", "/tickets/{ticket_id}/assignee"),
    _op("tickets", "list_replies", "GET", "/tickets/{ticket_id}/replies"),
    _op("tickets", "add_reply", "POST", "/tickets/{ticket_id}/replies"),
    _op("tickets", "get_rating", "GET", "/tickets/{ticket_id}/rating"),
    _op("tickets", "rate_ticket", "PUT", "/tickets/{ticket_id}/rating"),
    _op("tickets", "get_attachment", "GET", "/attachments/{attachment_id}"),
    # forms and deflection
    _op("forms", "list_departments", "GET", "/departments"),
    _op("forms", "create_department", "POST", "/departments"),
    _op("forms", "list_forms", "GET", "/forms"),
    _op("forms", "save_form", "POST", "/forms", operation_id="create_form", fixed=("form_id",)),
    _op("forms", "get_form", "GET", "/forms/{form_id}"),
    _op("forms", "save_form", "PUT", "/forms/{form_id}"),
    _op("forms", "delete_form", "DELETE", "/forms/{form_id}"),
    _op("forms", "record_deflection", "POST", "/deflections"),
    _op("forms", "deflection_summary", "GET", "/deflections/summary"),
    # chat
    _op("chat", "list_conversations", "GET", "/chat/conversations"),
    _op("chat", "start_conversation", "POST", "/chat/conversations"),
    _op("chat", "mark_conversations_read", "POST", "/chat/conversations/read"),
    _op("chat", "get_conversation", "GET", "/chat/conversations/{conversation_id}"),
    _op("chat", "assign_conversation", "PUT", "/chat/conversations/{conversation_id}/assignee"),
    _op(
        "chat",
        "set_conversation_status",
        "PUT",
        "/chat/conversations/{conversation_id}/status",
    ),
    _op("chat", "mark_conversation_read", "POST", "/chat/conversations/{conversation_id}/read"),
    _op(
        "chat",
        "update_conversation_contact",
        "PUT",
        "/chat/conversations/{conversation_id}/contact",
    ),
    _op(
        "chat",
        "conversation_to_ticket",
        "POST",
        "/chat/conversations/{conversation_id}/ticket",
    ),
    _op("chat", "chat_messages", "GET", "/chat/conversations/{conversation_id}/messages"),
    _op("chat", "add_chat_message", "POST", "/chat/conversations/{conversation_id}/messages"),
    _op("chat", "post_chat_message", "POST", "/chat/conversations/{conversation_id}/posts"),
    _op("chat", "list_canned_responses", "GET", "/chat/canned-responses"),
    _op(
        "chat",
        "save_canned_response",
        "POST",
        "/chat/canned-responses",
        operation_id="create_canned_response",
        fixed=("response_id",),
    ),
    _op("chat", "save_canned_response", "PUT", "/chat/canned-responses/{response_id}"),
    _op("chat", "delete_canned_response", "DELETE", "/chat/canned-responses/{response_id}"),
)

# Contract methods deliberately left out, and why (the remote client answers them itself).
NOT_EXPOSED = {
    "create_tenant": "spans tenants: an operator provisions tenants on the core",
    "list_tenants": "spans tenants: a key sees its own tenant only",
    "claim_domains_to_check": "spans tenants: the core's own process checks domains",
    "post_chat_messages": "a batch across tenants: sent as one post_chat_message each",
}


def by_method() -> dict[tuple[str, str], tuple[Operation, ...]]:
    """(domain, method) -> its operations, the one with the most path parameters first, so a
    call that has them all (`save_form(..., form_id=3)`) takes the PUT and one without the POST."""
    table: dict[tuple[str, str], list[Operation]] = {}
    for op in OPERATIONS:
        table.setdefault((op.domain, op.method), []).append(op)
    return {
        key: tuple(sorted(ops, key=lambda op: -len(op.located("path"))))
        for key, ops in table.items()
    }


def _check_ids_unique() -> None:
    ids = [op.id for op in OPERATIONS]
    assert len(ids) == len(set(ids)), "operation ids must be unique"


_check_ids_unique()
