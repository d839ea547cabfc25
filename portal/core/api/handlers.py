"""One generic handler per operation: arguments from the request, the contract call, the answer.

Every write runs under its Idempotency-Key (`idempotency.py`). The contract's errors become
problems here, inside the key's claim, so a retry replays them like any other final answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its DataError is used
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from starlette.requests import Request
from starlette.responses import Response

from portal.core.api.announcements import announce
from portal.core.api.auth import api_core, api_tenant
from portal.core.api.idempotency import (
    HEADER,
    IdempotencyStore,
    StoredAnswer,
    fingerprint,
    parse_key,
)
from portal.core.api.operations import Operation
from portal.core.api.problems import ApiProblem, problem
from portal.core.api.wire import ValidationError, field_errors
from portal.core.contract import Conflict, NotFound, Tenant

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024  # an article of 200,000 characters with room to spare
JSON = "application/json"
# Spent token ids are one table for every tenant; a tenant's are kept apart by this prefix.
_TOKEN_ARG = "token_id"


def idempotency_store(request: Request) -> IdempotencyStore:
    store: IdempotencyStore = request.app.state.idempotency
    return store


async def read_body(request: Request, cap: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise ApiProblem(413, "Content Too Large", f"A request body may hold {cap} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise ApiProblem(413, "Content Too Large", f"A request body may hold {cap} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _invalid(error: ValidationError, where: str) -> ApiProblem:
    errors = field_errors(error, (where,))
    if any(e["type"] == "json_invalid" for e in errors):
        return ApiProblem(400, "Malformed JSON", "The request body is not valid JSON.")
    return ApiProblem(
        422, "Validation failed", "Some values are missing or wrong: see errors.", errors=errors
    )


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in type(value).model_fields}


def arguments(op: Operation, request: Request, body: bytes) -> dict[str, Any]:
    """The contract call's arguments (all but tenant and idempotency key), validated."""
    args: dict[str, Any] = {}
    if op.path_adapter is not None:
        try:
            args.update(_fields(op.path_adapter.validate_python(dict(request.path_params))))
        except ValidationError as error:
            raise _invalid(error, "path") from None
    if op.query_adapter is not None:
        query = {name: request.query_params[name] for name in request.query_params}
        try:
            model: BaseModel = op.query_adapter.validate_python(query)
        except ValidationError as error:
            raise _invalid(error, "query") from None
        args.update(_fields(model))
    if op.body_adapter is not None:
        try:
            value = op.body_adapter.validate_json(body or (b"" if op.body_param else b"{}"))
        except ValidationError as error:
            raise _invalid(error, "body") from None
        if op.body_param is not None:
            args[op.body_param.name] = value
        else:
            args.update(_fields(value))
    return args


async def call(op: Operation, request: Request, tenant: Tenant, args: dict[str, Any]) -> Response:
    """Run the contract method; its errors (and the database's refusals) become problems."""
    domain = getattr(api_core(request), op.domain)
    if op.takes_tenant:
        args["tenant_id"] = tenant.id
    if _TOKEN_ARG in args and op.method == "spend_token":
        args[_TOKEN_ARG] = f"t{tenant.id}:{args[_TOKEN_ARG]}"
    try:
        result = await getattr(domain, op.method)(**args)
    except NotFound as error:
        return problem(404, "Not Found", str(error))
    except Conflict as error:
        return problem(409, "Conflict", str(error))
    except (DataError, IntegrityError, OverflowError) as error:
        # Input the contract let through but the database cannot hold (a number out of range,
        # a reference to nothing): the caller's to fix, not a server error.
        log.info("core API %s refused by the database: %s", op.id, error)
        return problem(
            422, "Unprocessable Content", "A value is out of range or refers to nothing."
        )
    except StatementError as error:
        if _bad_value(error):
            return problem(422, "Unprocessable Content", "A value is out of range.")
        raise
    except ValueError as error:
        # The core refuses a value it was given (an unknown status, a malformed email).
        return problem(422, "Unprocessable Content", str(error))
    if op.own_tenant_result and getattr(result, "id", None) != tenant.id:
        return problem(404, "Not Found", "No such tenant for this key.")
    announce(api_core(request), op, tenant.id, args, result)
    if op.returns_nothing:
        return Response(status_code=204)
    return Response(op.result_adapter.dump_json(result), 200, media_type=JSON)


def _bad_value(error: StatementError) -> bool:
    """Whether the driver refused a value before the database saw it (asyncpg: an integer out
    of INTEGER's range; sqlite3: one beyond 64 bits)."""
    cause: BaseException | None = error.orig
    while cause is not None:
        if isinstance(cause, (OverflowError, ValueError, TypeError, asyncpg.DataError)):
            return True
        cause = cause.__cause__
    return False


def _final(status: int) -> bool:
    """Whether an answer is the request's for good, to replay on a retry: not a 409 or 429 (a
    retry may succeed) and not a server error (the write may not have happened)."""
    return status < 500 and status not in (409, 429)


async def idempotent(
    request: Request,
    tenant: Tenant,
    key: str,
    body: bytes,
    run: Callable[[], Awaitable[Response]],
) -> Response:
    """Run a write under its Idempotency-Key: a retry after it gets the first answer replayed,
    the key on another request 422, a retry while it runs 409. A problem `run` raises is an
    answer like any other."""
    store = idempotency_store(request)
    print_ = fingerprint(request.method, request.url.path, request.url.query, body)
    stored = await store.begin(tenant.id, key, print_)
    if stored is not None:
        return Response(
            stored.body,
            stored.status,
            media_type=stored.content_type or None,
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        try:
            async with store.leased(tenant.id, key):
                response = await run()
        except ApiProblem as refusal:
            response = refusal.response()
    except BaseException:
        await store.abandon(tenant.id, key)
        raise
    if _final(response.status_code):
        content_type = response.headers.get("content-type", "")
        answer = StoredAnswer(response.status_code, bytes(response.body).decode(), content_type)
        await store.finish(tenant.id, key, answer)
    else:
        await store.abandon(tenant.id, key)
    return response


def endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        tenant = await api_tenant(request)
        if not op.is_write:
            return await call(op, request, tenant, arguments(op, request, b""))
        key = parse_key(request.headers.get(HEADER))
        body = await read_body(request)
        args = arguments(op, request, body)
        if op.idempotency_param:
            args["idempotency_key"] = key
        return await idempotent(request, tenant, key, body, lambda: call(op, request, tenant, args))

    handle.__name__ = op.id
    return handle
