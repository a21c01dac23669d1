"""``put``: copy a file from the controller to the host (SFTP over the run's connection)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

from pydantic import PrivateAttr

from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome
from controller.workflows.steps.fields import Template
from controller.workflows.template import render_plain


class PutAction(StepKind):
    """``put: {src, dest}``: ``src`` on the controller (once rendered, relative to the playbook's
    directory unless absolute), ``dest`` on the host."""

    kind: ClassVar[str] = "put"
    templates: ClassVar[tuple[str, ...]] = ("src", "dest")

    src: Template
    dest: Template
    _base: Path | None = PrivateAttr(default=None)  # the playbook's directory (resolve)

    def resolve(self, base: Path) -> Self:
        resolved = self.model_copy()
        resolved._base = base
        return resolved

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        src, dest = render_plain(self.src, ctx.values), render_plain(self.dest, ctx.values)
        if self._base is not None:
            src = str(self._base / src)  # an absolute src stays as it is
        started = ctx.clock()
        ctx.executor.put(src, dest)
        return StepOutcome(True, f"put {src} {dest}", None, ctx.clock() - started)
