"""``get``: copy a file from the host to the controller (SFTP over the run's connection)."""

from __future__ import annotations

from typing import ClassVar

from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome
from controller.workflows.steps.fields import Template
from controller.workflows.template import render_plain


class GetAction(StepKind):
    """``get: {src, dest}``: ``src`` on the host, ``dest`` on the controller."""

    kind: ClassVar[str] = "get"
    templates: ClassVar[tuple[str, ...]] = ("src", "dest")

    src: Template
    dest: Template

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        src, dest = render_plain(self.src, ctx.values), render_plain(self.dest, ctx.values)
        started = ctx.clock()
        ctx.executor.get(src, dest)
        return StepOutcome(True, f"get {src} {dest}", None, ctx.clock() - started)
