"""The executor kinds: one line per kind (name, typed frozen options, factory).

An executor kind is a class that satisfies :class:`~controller.workflows.executor.Executor` and an
options model (a :class:`~controller.configkit.ConfigModel` with ``type: Literal["<name>"]``);
config holding executor options reads them as :data:`ExecutorOptions` (a discriminated union of
the registered models, by ``type``). Every kind listed here is run through
tests/controller/workflows/test_executor_contract.py, beside the unit tests' ``FakeExecutor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from controller.configkit import ConfigModel, one_of
from controller.workflows.executor import Executor
from controller.workflows.ssh import SSHExecutor, SSHOptions, SSHTarget

OptionsT = TypeVar("OptionsT", bound=ConfigModel)


@dataclass(frozen=True)
class ExecutorKind(Generic[OptionsT]):
    """``build(target, options)`` returns a connected-on-demand executor for one host."""

    name: str
    options: type[OptionsT]
    build: Callable[[SSHTarget, OptionsT], Executor]


EXECUTORS: tuple[ExecutorKind[Any], ...] = (
    ExecutorKind("ssh", SSHOptions, SSHExecutor),
)

if TYPE_CHECKING:
    ExecutorOptions = SSHOptions
else:
    ExecutorOptions = one_of(tuple(kind.options for kind in EXECUTORS))


def executor_kind(name: str) -> ExecutorKind[Any]:
    for kind in EXECUTORS:
        if kind.name == name:
            return kind
    raise KeyError(f"no executor kind {name!r} (known: {', '.join(k.name for k in EXECUTORS)})")


def build_executor(target: SSHTarget, options: ConfigModel | None = None) -> Executor:
    """An executor for ``target`` of the kind its options name (default: ``ssh`` with defaults)."""
    chosen = options if options is not None else SSHOptions()
    kind = executor_kind(str(getattr(chosen, "type", "")))
    return kind.build(target, chosen)
