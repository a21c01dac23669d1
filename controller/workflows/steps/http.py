"""``http``: a GET from the controller (TLS verified, redirects followed), judged by status AND body.

An error page served with status 200 (``DB query error``) fails the step through ``body_not_regex``.
The timeline records the status as the exit code and the body's tail as the output.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome, timeout_of
from controller.workflows.steps.fields import Codes, Regex, Template
from controller.workflows.template import render_plain

BODY_TAIL = 4000


class HttpAction(StepKind):
    """``http: {url, status, body_regex, body_not_regex}`` or ``http: URL``."""

    kind: ClassVar[str] = "http"
    shorthand: ClassVar[str | None] = "url"
    templates: ClassVar[tuple[str, ...]] = ("url",)

    url: Template
    status: Codes = (200,)
    body_regex: Regex | None = None
    body_not_regex: Regex | None = None

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        url = render_plain(self.url, ctx.values)
        shown = f"GET {url}"
        timeout = timeout_of(step, ctx.values)
        started = ctx.clock()
        try:
            if ctx.http is not None:
                response = ctx.http.get(url, timeout=timeout, follow_redirects=True)
            else:
                with httpx.Client(verify=True) as client:  # TLS verified by default
                    response = client.get(url, timeout=timeout, follow_redirects=True)
        except httpx.HTTPError as exc:
            return StepOutcome(False, shown, None, ctx.clock() - started, message=f"request failed: {exc}")
        body = response.text
        problem = None
        if response.status_code not in self.status:
            problem = f"HTTP {response.status_code}, expected {list(self.status)}"
        elif self.body_not_regex and (m := self.body_not_regex.search(body)):
            problem = f"body matches the error pattern: {m.group(0)[:200]!r}"
        elif self.body_regex and not self.body_regex.search(body):
            problem = f"body lacks {self.body_regex.pattern!r}"
        return StepOutcome(problem is None, shown, response.status_code, ctx.clock() - started,
                           ctx.redact(body)[-BODY_TAIL:], "", problem or "")  # masked, then cut
