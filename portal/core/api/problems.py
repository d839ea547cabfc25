"""RFC 9457 problem details: every error of the core API is `application/problem+json`.

Handlers either return `problem(...)` or raise `ApiProblem(...)`; `create_core_app` turns the
exception (and the contract's NotFound / Conflict) into the same response, so a client reads one
error shape whatever went wrong.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_body(status: int, title: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        # "about:blank": the title is the status's meaning; no problem type page to link to.
        "type": extra.pop("type", "about:blank"),
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response. `extra` adds members, e.g. `errors=[{"pointer": ...,
    "detail": ...}]` for validation failures (one entry per field)."""
    return ProblemResponse(problem_body(status, title, detail, **extra), status, headers=headers)


class ApiProblem(Exception):
    """Raise anywhere under a core API handler to answer with a problem."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def response(self) -> JSONResponse:
        return problem(self.status, self.title, self.detail, headers=self.headers, **self.extra)
