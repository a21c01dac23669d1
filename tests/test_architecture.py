"""The import rules of docs/architecture.md, checked on the source: no cycle between the packages
(and top-level modules) of ``agent`` or ``controller``, imports only downwards through the
controller's layers, ``controller`` imports nothing of ``agent`` but the report schema, and
``agent`` imports nothing of ``controller``."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The controller's layers, lowest first: a unit may import its own layer and those below.
CONTROLLER_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"controller", "errors", "tokens", "redact", "configkit", "schedule", "schedule_trigger",
               "store", "leader", "report_wire"}),
    frozenset({"detection"}),
    frozenset({"alerting"}),
    frozenset({"workflows"}),
    frozenset({"config", "inventory", "operators", "ingest", "ingest_writer", "fleet", "fleet_metrics",
               "retention", "monitor", "runtime", "migrations", "enrolment", "runvars", "reports"}),
    frozenset({"api", "server", "ui"}),
    frozenset({"cli"}),
)
#: what ``controller`` may import from ``agent``
AGENT_FOR_THE_CONTROLLER = frozenset({"agent.report"})


def modules(package: str) -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imports(module: str, path: Path) -> Iterator[str]:
    """Every module ``module`` imports (at module level or inside functions), absolute."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # `from controller import tokens`


def unit(name: str, package: str) -> str | None:
    """The package (or top-level module) of ``package`` that ``name`` belongs to."""
    parts = name.split(".")
    if parts[0] != package:
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return package
    return parts[1] if (ROOT / package / parts[1]).is_dir() or (ROOT / package / f"{parts[1]}.py").is_file() \
        else package


def graph(package: str) -> dict[str, dict[str, str]]:
    """unit → {imported unit: the module that imports it (for the message)}."""
    edges: dict[str, dict[str, str]] = {}
    for module, path in modules(package):
        source = unit(module, package)
        assert source is not None
        for name in imports(module, path):
            target = unit(name, package)
            if target is not None and target != source:
                edges.setdefault(source, {}).setdefault(target, module)
    return edges


def find_cycle(edges: dict[str, dict[str, str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


@pytest.mark.parametrize("package", ["agent", "controller"])
def test_no_import_cycle_between_packages(package: str) -> None:
    edges = graph(package)
    cycle = find_cycle(edges)
    if cycle:
        steps = [f"{a} → {b} (in {edges[a][b]})" for a, b in itertools.pairwise(cycle)]
        pytest.fail(f"import cycle in {package}: " + "; ".join(steps))


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b": "a.x"}, "b": {"c": "b.y"}, "c": {"a": "c.z"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "a.x"}, "b": {"c": "b.y"}}) is None


def test_the_controller_imports_only_downwards() -> None:
    level = {name: i for i, layer in enumerate(CONTROLLER_LAYERS) for name in layer}
    edges = graph("controller")
    unplaced = sorted((set(edges) | {t for targets in edges.values() for t in targets}) - set(level))
    assert not unplaced, f"place these in CONTROLLER_LAYERS (and docs/architecture.md): {unplaced}"
    upwards = [f"{source} → {target} (in {module})" for source, targets in sorted(edges.items())
               for target, module in sorted(targets.items()) if level[target] > level[source]]
    assert not upwards, "imports upwards through the layers: " + "; ".join(upwards)


def test_the_controller_imports_only_the_report_schema_from_the_agent() -> None:
    def allowed(name: str) -> bool:
        return any(name == ok or name.startswith(ok + ".") for ok in AGENT_FOR_THE_CONTROLLER)

    found = sorted({f"{name} (in {module})" for module, path in modules("controller")
                    for name in imports(module, path) if name.split(".")[0] == "agent" and not allowed(name)})
    assert not found, f"controller imports from agent beyond {sorted(AGENT_FOR_THE_CONTROLLER)}: {found}"


def test_the_agent_imports_nothing_of_the_controller() -> None:
    found = sorted({f"{name} (in {module})" for module, path in modules("agent")
                    for name in imports(module, path) if name.split(".")[0] == "controller"})
    assert not found, f"the agent must not depend on the controller: {found}"
