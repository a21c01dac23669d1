"""The step kinds: one line per kind. A playbook's steps are read through this list (the one key of
a step that names a kind picks its options model) and the timeline names steps by it.

Adding a kind: a module beside this one with a :class:`~controller.workflows.steps.base.StepKind`
subclass, one line below, and an example in tests/controller/workflows/test_step_contract.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import create_model

from controller.workflows.steps.base import StepKind, StepOptions
from controller.workflows.steps.get import GetAction
from controller.workflows.steps.http import HttpAction
from controller.workflows.steps.put import PutAction
from controller.workflows.steps.run import RunAction
from controller.workflows.steps.testinfra import TestinfraAction
from controller.workflows.steps.wait_healthy import WaitHealthyAction
from controller.workflows.steps.wait_host import WaitHostAction

KINDS: tuple[type[StepKind], ...] = (
    RunAction,
    PutAction,
    GetAction,
    HttpAction,
    TestinfraAction,
    WaitHealthyAction,
    WaitHostAction,
)


def _step_model() -> Any:
    """The YAML shape of a step: the common keys and one optional key per kind."""
    kinds: dict[str, Any] = {kind.kind: (kind | None, None) for kind in KINDS}
    return create_model("StepSpec", __base__=StepOptions, __module__=__name__, **kinds)


if TYPE_CHECKING:
    StepSpec = StepOptions
else:
    StepSpec = _step_model()

