"""``testinfra``: a pytest-testinfra module run against the host with the executor's pinned SSH
settings (OpenSSH client, ``StrictHostKeyChecking yes``, the controller's known_hosts)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

from controller.configkit import Invalid
from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome, timeout_of
from controller.workflows.steps.fields import LocalPath

OUTPUT_TAIL = 4000


@runtime_checkable
class TestinfraTarget(Protocol):
    """An executor that can point pytest-testinfra at its host."""

    def testinfra_args(self, workdir: Path) -> list[str]: ...


class TestinfraAction(StepKind):
    """``testinfra: module.py`` or ``testinfra: {module}`` (relative to the playbook's directory)."""

    __test__ = False  # not a pytest test class, whatever its name says

    kind: ClassVar[str] = "testinfra"
    shorthand: ClassVar[str | None] = "module"

    module: LocalPath

    def resolve(self, base: Path) -> Self:
        module = self.module if self.module.is_absolute() else base / self.module
        if not module.is_file():
            raise Invalid("module", "an existing testinfra test module", str(module))
        return self.model_copy(update={"module": module})

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        shown = f"testinfra {self.module}"
        target = ctx.executor
        if not isinstance(target, TestinfraTarget):
            return StepOutcome(False, shown, message="testinfra needs an SSH executor")
        started = ctx.clock()
        timeout = timeout_of(step, ctx.values)
        with tempfile.TemporaryDirectory(prefix="boxkeeper-testinfra-") as tmp:
            args = target.testinfra_args(Path(tmp))
            (Path(tmp) / "pytest.ini").write_text("[pytest]\n")  # not the project's settings
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "testinfra.plugin",
                    "-c", f"{tmp}/pytest.ini", "-W", "ignore::DeprecationWarning", *args, str(self.module)]
            # only testinfra's plugin: pytest starts in 1 s, not 5
            env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                      env=env)
            except subprocess.TimeoutExpired:
                return StepOutcome(False, shown, None, ctx.clock() - started, message="testinfra timed out")
        ok = proc.returncode == 0
        return StepOutcome(ok, shown, proc.returncode, ctx.clock() - started,  # masked, then cut
                           ctx.redact(proc.stdout)[-OUTPUT_TAIL:], ctx.redact(proc.stderr)[-OUTPUT_TAIL:],
                           "" if ok else "testinfra tests failed")
