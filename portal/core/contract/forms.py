"""Departments, contact forms and their custom fields, and deflection (articles suggested while
a visitor wrote a ticket)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

FIELD_TYPES = ("text", "textarea", "number", "date", "choice", "multichoice", "checkbox", "file")
STANDARD_FIELDS = ("name", "email", "subject", "description", "priority")


@dataclass(frozen=True)
class Department:
    id: int
    tenant_id: int
    name: str


@dataclass(frozen=True)
class Choice:
    """One value of a choice field; `department_ids` empty means every department."""

    value: str
    label: str
    department_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Field:
    """A custom form field; shown for `department_ids` only (empty: every department)."""

    key: str
    label: str
    type: str  # one of FIELD_TYPES
    required: bool = False
    help_text: str = ""
    options: tuple[Choice, ...] = ()
    department_ids: tuple[int, ...] = ()

    def shown_for(self, department_id: int | None) -> bool:
        return not self.department_ids or department_id in self.department_ids

    def choices_for(self, department_id: int | None) -> tuple[Choice, ...]:
        return tuple(
            c for c in self.options if not c.department_ids or department_id in c.department_ids
        )


@dataclass(frozen=True)
class FormDraft:
    title: str
    department_id: int | None = None  # None: the visitor picks a department
    kind: str = "ticket"  # "ticket" or "task"
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Form:
    id: int
    tenant_id: int
    title: str
    department_id: int | None
    kind: str = "ticket"
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True)
class DeflectionSummary:
    """How often an article suggested on a form was opened, and how often no ticket followed."""

    article_id: int
    title: str
    opened: int
    without_ticket: int


@runtime_checkable
class FormsDomain(Protocol):
    """`core.forms`: what the contact forms ask, and which suggested articles spared a ticket."""

    async def create_department(self, tenant_id: int, name: str) -> Department: ...
    async def list_departments(self, tenant_id: int) -> list[Department]: ...
    async def save_form(
        self, tenant_id: int, draft: FormDraft, form_id: int | None = None
    ) -> Form: ...
    async def get_form(self, tenant_id: int, form_id: int) -> Form: ...
    async def list_forms(self, tenant_id: int) -> list[Form]: ...
    async def delete_form(self, tenant_id: int, form_id: int) -> None: ...

    async def record_deflection(
        self, tenant_id: int, visit_key: str, article_id: int, query: str
    ) -> None: ...
    async def deflection_summary(self, tenant_id: int) -> list[DeflectionSummary]: ...
