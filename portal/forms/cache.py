"""A short per-app cache of form definitions and department lists.

Every submission needs its form and the tenant's departments; reading them from the core costs
two to three database round trips, about as much as a third of creating the ticket. They change
only in the admin builder, which drops this app's entries at once (`forget`); other processes see
a change within TTL seconds. A ticket never depends on a stale entry for long: a department that
is gone makes the core refuse the ticket, which the routes answer as a field error.
"""

from __future__ import annotations

import time
from dataclasses import replace

from portal.core.contract import Department, Form, HelpdeskCore, NotFound

TTL = 10.0
MAX_ENTRIES = 10_000


class FormCache:
    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._forms: dict[tuple[int, int], tuple[float, Form | None]] = {}
        self._departments: dict[int, tuple[float, list[Department]]] = {}

    async def form(self, core: HelpdeskCore, tenant_id: int, form_id: int) -> Form | None:
        now = time.monotonic()
        key = (tenant_id, form_id)
        cached = self._forms.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            form: Form | None = await core.forms.get_form(tenant_id, form_id)
        except NotFound:
            form = None
        if form is not None and not core.capabilities.attachments:
            # A core that keeps no files: file fields are neither shown nor required.
            form = replace(form, fields=tuple(f for f in form.fields if f.type != "file"))
        if len(self._forms) > MAX_ENTRIES:
            self._forms.clear()  # unknown ids must not grow memory without bound
        self._forms[key] = (now + self.ttl, form)
        return form

    async def departments(self, core: HelpdeskCore, tenant_id: int) -> list[Department]:
        now = time.monotonic()
        cached = self._departments.get(tenant_id)
        if cached is not None and cached[0] > now:
            return list(cached[1])
        departments = await core.forms.list_departments(tenant_id)
        if len(self._departments) > MAX_ENTRIES:
            self._departments.clear()
        self._departments[tenant_id] = (now + self.ttl, list(departments))
        return departments

    def forget_all(self) -> None:
        self._departments.clear()
        self._forms.clear()

    def forget(self, tenant_id: int) -> None:
        """Drop a tenant's entries (after the admin builder changed a form or a department)."""
        self._departments.pop(tenant_id, None)
        for key in [k for k in self._forms if k[0] == tenant_id]:
            del self._forms[key]
