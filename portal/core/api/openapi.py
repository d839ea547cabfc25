"""The OpenAPI 3.1 document of the core API, built from the operations table and the wire
schemas (pydantic's JSON Schema of the contract's dataclasses, under components/schemas)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from portal.core.api.idempotency import HEADER, MAX_KEY_LENGTH
from portal.core.api.operations import OPERATIONS, PREFIX, Operation
from portal.core.api.problems import PROBLEM_MEDIA_TYPE
from portal.core.contract import Capabilities, Tenant

REF = "#/components/schemas/{model}"
VERSION = "1.0.0"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "One entry per invalid field (422).",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string"},
                    "detail": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["pointer", "detail"],
            },
        },
    },
    "required": ["type", "title", "status"],
}

_PROBLEM_RESPONSE = {
    "description": "A problem (RFC 9457): 400 malformed, 401 no valid key, 404 not found, "
    "409 conflict or a retry while the first request runs, 413 body too large, 422 invalid "
    "input or an Idempotency-Key reused for another request.",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")}}},
}

IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": True,
    "description": "Required on every write; the same value on each retry of one request. "
    "A retry after the first finished gets its answer again.",
    # Visible ASCII, as the header value must be (quotes allowed: a structured-field string).
    "schema": {"type": "string", "pattern": f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"},
}


def _drop_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without `null`: an absent parameter is the default."""
    options = schema.get("anyOf")
    if options:
        rest = [s for s in options if s.get("type") != "null"]
        if len(rest) == 1:
            merged = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**merged, **rest[0]}
        schema = {**schema, "anyOf": rest}
    return {k: v for k, v in schema.items() if not (k == "default" and v is None)}


def _plain_tuples(node: Any) -> Any:
    """Fixed-length arrays (`tuple[list[Article], int]`) as `items: {anyOf}` with their length
    instead of `prefixItems`: valid 3.1 either way, but several OpenAPI tools (schemathesis
    among them) still read `prefixItems` as 3.0 would, and reject the document."""
    if isinstance(node, list):
        return [_plain_tuples(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _plain_tuples(value) for key, value in node.items()}
    if "prefixItems" in node:
        options = node.pop("prefixItems")
        node["items"] = {"anyOf": options} if len(options) > 1 else options[0]
    return node


def _parameters(model_schema: dict[str, Any], where: str) -> list[dict[str, Any]]:
    required = set(model_schema.get("required", ()))
    params = []
    for name, schema in model_schema.get("properties", {}).items():
        schema = {k: v for k, v in schema.items() if k != "title"}
        params.append(
            {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "schema": _drop_null(schema) if where == "query" else schema,
            }
        )
    return params


def _operation(op: Operation, schemas: dict[tuple[str, JsonSchemaMode], Any], defs: Any) -> Any:
    def model(kind: str) -> dict[str, Any]:
        schema = schemas[(f"{op.id}:{kind}", "validation")]
        name = schema["$ref"].rsplit("/", 1)[-1]
        return dict(defs.pop(name))  # inlined as parameters, not a component

    parameters: list[dict[str, Any]] = []
    if op.path_adapter is not None:
        parameters += _parameters(model("path"), "path")
    if op.query_adapter is not None:
        parameters += _parameters(model("query"), "query")
    if op.is_write:
        parameters.append(IDEMPOTENCY_PARAMETER)
    document: dict[str, Any] = {
        "operationId": op.id,
        "summary": op.summary or f"{op.domain}.{op.method}",
        "tags": [op.domain],
        "parameters": parameters,
    }
    if op.body_adapter is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas[(f"{op.id}:body", "validation")]}},
        }
    if op.returns_nothing:
        ok: dict[str, Any] = {"204": {"description": "Done."}}
    else:
        result = schemas[(f"{op.id}:result", "serialization")]
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": result}}}}
    document["responses"] = {**ok, "default": _PROBLEM_RESPONSE}
    return document


@cache
def openapi_document(extra_paths_key: str = "") -> dict[str, Any]:
    """The document (built once per process: the table does not change while it runs)."""
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("capabilities", "serialization", TypeAdapter(Capabilities)),
        ("tenant", "serialization", TypeAdapter(Tenant)),
    ]
    for op in OPERATIONS:
        for kind, found in (
            ("path", op.path_adapter),
            ("query", op.query_adapter),
            ("body", op.body_adapter),
        ):
            if found is not None:
                inputs.append((f"{op.id}:{kind}", "validation", found))
        if not op.returns_nothing:
            inputs.append((f"{op.id}:result", "serialization", op.result_adapter))
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF)
    defs = dict(definitions.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(PREFIX + op.path, {})[op.verb.lower()] = _operation(op, schemas, defs)
    paths[PREFIX + "/capabilities"] = {"get": _simple("capabilities", schemas, "Capabilities")}
    paths[PREFIX + "/tenant"] = {"get": _simple("tenant", schemas, "The key's own tenant")}
    paths.update(_events_paths())
    defs["Problem"] = PROBLEM_SCHEMA
    return _plain_tuples(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Help desk core API",
                "version": VERSION,
                "description": "The help desk contract over HTTP, one tenant per bearer key. "
                "Every write requires an Idempotency-Key header; errors are problem+json.",
            },
            "servers": [{"url": "/"}],
            "security": [{"bearerKey": []}],
            "paths": paths,
            "components": {
                "schemas": defs,
                "securitySchemes": {
                    "bearerKey": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A tenant's key from `portal core-key --tenant SLUG`.",
                    }
                },
            },
        }
    )


def _simple(name: str, schemas: Any, summary: str) -> dict[str, Any]:
    return {
        "operationId": f"get_{name}",
        "summary": summary,
        "tags": ["core"],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": schemas[(name, "serialization")]}},
            },
            "default": _PROBLEM_RESPONSE,
        },
    }


_WEBHOOK = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "url": {"type": "string"},
        "delivered_through": {"type": "string", "description": "The last cursor delivered."},
        "failed_attempts": {"type": "integer"},
        "last_error": {"type": "string"},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "url", "delivered_through", "failed_attempts", "disabled", "created_at"],
}


# `portal.core.envelope.Envelope`: what the feed lists and each webhook carries.
_ENVELOPE = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "type": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "tenant_id": {"type": "integer"},
        "data": {"type": "object"},
        "cursor": {"type": "string"},
        "previous": {"type": ["string", "null"]},
    },
    "required": ["id", "type", "time", "tenant_id", "data", "cursor"],
}


def _events_paths() -> dict[str, Any]:
    """The feed and the webhook endpoints (`events_routes.py`: their own handlers, not the
    operations table's, since they are the core's own and no contract method)."""
    from portal.core.api.events_routes import MAX_LIMIT

    def ok(status: str, schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
        return {
            status: {
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }
        }

    return {
        PREFIX + "/events": {
            "get": {
                "operationId": "list_events",
                "summary": "The tenant's events after a cursor, in order (410: resync)",
                "tags": ["events"],
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                    },
                ],
                "responses": {
                    **ok(
                        "200",
                        {
                            "type": "object",
                            "properties": {
                                "events": {"type": "array", "items": _ENVELOPE},
                                "next": {"type": "string"},
                            },
                            "required": ["events", "next"],
                        },
                    ),
                    "default": _PROBLEM_RESPONSE,
                },
            }
        },
        PREFIX + "/webhooks": {
            "get": {
                "operationId": "list_webhooks",
                "summary": "The tenant's webhook endpoints",
                "tags": ["events"],
                "responses": {
                    **ok(
                        "200",
                        {
                            "type": "object",
                            "properties": {"webhooks": {"type": "array", "items": _WEBHOOK}},
                            "required": ["webhooks"],
                        },
                    ),
                    "default": _PROBLEM_RESPONSE,
                },
            },
            "post": {
                "operationId": "create_webhook",
                "summary": "Register an edge's endpoint; its signing secret is shown once",
                "tags": ["events"],
                "parameters": [IDEMPOTENCY_PARAMETER],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"url": {"type": "string"}},
                                "required": ["url"],
                            }
                        }
                    },
                },
                "responses": {
                    **ok(
                        "201",
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer"},
                                "url": {"type": "string"},
                                "secret": {"type": "string"},
                            },
                            "required": ["id", "url", "secret"],
                        },
                        "Created",
                    ),
                    "default": _PROBLEM_RESPONSE,
                },
            },
        },
        PREFIX + "/webhooks/{webhook_id}": {
            "delete": {
                "operationId": "delete_webhook",
                "summary": "Remove an endpoint",
                "tags": ["events"],
                "parameters": [
                    {
                        "name": "webhook_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    IDEMPOTENCY_PARAMETER,
                ],
                "responses": {"204": {"description": "Removed."}, "default": _PROBLEM_RESPONSE},
            }
        },
    }
