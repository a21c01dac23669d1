"""``wait_host``: wait, up to the step's timeout (the deadline), until the host answers over SSH and a
probe command succeeds on it — across a reboot.

Unlike every other kind, a dropped connection or a refused connect is not the end of the step: it is
what a rebooting host does, so the step keeps polling (every ``poll`` seconds) until the probe exits
0, and fails only when the deadline passes ("host not back within N s", with the last thing it
saw). A host key that is unknown or differs after the reboot is never waited out: that error
propagates (the engine refuses the host). One probe may take up to ``probe_timeout`` seconds, and
reconnecting inside one probe may take up to the executor's ``reconnect_deadline`` (ssh.py), so the
deadline is checked between probes: the last probe starts no later than the deadline.
"""

from __future__ import annotations

from typing import ClassVar

from controller.workflows.errors import ConnectError, ConnectionLostError
from controller.workflows.executor import Command
from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome, timeout_of
from controller.workflows.steps.fields import CommandTemplate, PollInterval, Seconds
from controller.workflows.template import render_shell, secret_env

DEFAULT_DEADLINE = 600.0


class WaitHostAction(StepKind):
    """``wait_host: {command, poll (5), probe_timeout (30)}`` or ``wait_host: "command"``."""

    kind: ClassVar[str] = "wait_host"
    shorthand: ClassVar[str | None] = "command"
    templates: ClassVar[tuple[str, ...]] = ("command",)

    command: CommandTemplate
    poll: PollInterval = 5.0
    probe_timeout: Seconds = 30.0

    def default_timeout(self) -> float:
        return DEFAULT_DEADLINE

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        text = render_shell(self.command, ctx.values, ctx.secrets)
        env = secret_env(self.command, ctx.values, ctx.secrets)
        command = Command(text, ctx.redact(text), env)
        deadline_s = timeout_of(step, ctx.values)
        started = ctx.clock()
        deadline = started + deadline_s
        probes = 0
        last = "no probe ran"
        code: int | None = None
        out = err = ""
        while True:
            probes += 1
            try:
                result = ctx.executor.run(command, min(self.probe_timeout, max(1.0, deadline - ctx.clock())))
            except (ConnectError, ConnectionLostError) as exc:
                code, out, err, last = None, "", "", f"not reachable: {exc}"
            else:
                code, out, err = result.exit_code, result.stdout_tail, result.stderr_tail
                if code == 0 and not result.timed_out:
                    return StepOutcome(True, ctx.redact(text), 0, ctx.clock() - started, ctx.redact(out),
                                       ctx.redact(err), f"host answered after {probes} probe(s)")
                last = "probe timed out" if result.timed_out else f"probe exited {code}"
            if ctx.clock() + self.poll > deadline:
                break
            ctx.sleep(self.poll)
        return StepOutcome(False, ctx.redact(text), code, ctx.clock() - started, ctx.redact(out),
                           ctx.redact(err),
                           f"host not back within {deadline_s:g} s ({probes} probe(s); last: {last})")
