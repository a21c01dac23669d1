"""``wait_healthy``: for ``soak`` seconds the host's agent must report no hard CRITICAL check, and at
least one report must arrive during the soak (no data = failure)."""

from __future__ import annotations

from typing import ClassVar

from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome
from controller.workflows.steps.fields import PollInterval, Seconds

SLACK = 60.0  # the default timeout: the soak and this much more


class WaitHealthyAction(StepKind):
    """``wait_healthy: {soak, poll}`` (seconds)."""

    kind: ClassVar[str] = "wait_healthy"

    soak: Seconds
    poll: PollInterval = 5.0

    def default_timeout(self) -> float:
        return self.soak + SLACK

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        shown = f"wait_healthy soak={self.soak:g}s"
        if ctx.health is None:
            return StepOutcome(False, shown, message="no health source (agent reports): no data = failure")
        started = ctx.clock()
        while True:
            view = ctx.health.latest(ctx.host)
            if view.hard_critical:
                return StepOutcome(False, shown, None, ctx.clock() - started,
                                   message=f"hard CRITICAL: {', '.join(view.hard_critical)}")
            if ctx.clock() - started >= self.soak:
                break
            ctx.sleep(self.poll)
        if view.last_report_at is None or view.last_report_at < started:
            return StepOutcome(False, shown, None, ctx.clock() - started,
                               message="no agent report during the soak period (no data = failure)")
        return StepOutcome(True, shown, None, ctx.clock() - started,
                           message="no hard CRITICAL during the soak")
