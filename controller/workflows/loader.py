"""Reading a playbook: YAML → the frozen values of playbook.py, refusing anything invalid with a
ConfigError that names the file, the key path and what was expected; ``--var`` overrides, type-checked.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from controller.errors import ConfigError
from controller.workflows.playbook import (
    BUILTINS,
    KINDS,
    Action,
    Capture,
    GetAction,
    HttpAction,
    Phase,
    Playbook,
    PutAction,
    Retry,
    RunAction,
    Step,
    TestinfraAction,
    Until,
    Variable,
    VarType,
    WaitHealthyAction,
)
from controller.workflows.template import Value, placeholders, quoting_problem


class _Reader:
    """Typed access to a YAML mapping, raising ConfigError with the key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, expected: str, got: object = ...) -> ConfigError:
        return ConfigError(self.source, path, expected, got)

    def mapping(self, raw: object, path: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(path, "a mapping", raw)
        if allowed is not None:
            for key in raw:
                if key not in allowed:
                    raise self.fail(f"{path}.{key}", f"one of the keys {', '.join(allowed)}", key)
        return raw

    def string(self, raw: object, path: str) -> str:
        if not isinstance(raw, str) or not raw:
            raise self.fail(path, "a non-empty string", raw)
        return raw

    def number(self, raw: object, path: str, minimum: float = 0.0) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < minimum:
            raise self.fail(path, f"a number >= {minimum:g}", raw)
        return float(raw)

    def integer(self, raw: object, path: str, minimum: int = 0) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < minimum:
            raise self.fail(path, f"an integer >= {minimum}", raw)
        return raw

    def regex(self, raw: object, path: str) -> re.Pattern[str]:
        text = self.string(raw, path)
        try:
            return re.compile(text, re.MULTILINE)
        except re.error as exc:
            raise self.fail(path, f"a valid regular expression ({exc})", raw) from None

    def opt_regex(self, raw: dict[str, Any], key: str, path: str) -> re.Pattern[str] | None:
        return None if raw.get(key) is None else self.regex(raw[key], f"{path}.{key}")

    def codes(self, raw: object, path: str) -> tuple[int, ...]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise self.fail(path, "a non-empty list of integers", raw)
        return tuple(self.integer(item, path) for item in items)


def convert(var: Variable, raw: object, source: str, path: str) -> Value:
    """Check (and from a ``--var`` string, convert) a value for a variable's type."""
    expected = {
        VarType.STR: "a string",
        VarType.PATH: "an absolute path",
        VarType.INT: "an integer",
        VarType.FLOAT: "a number",
        VarType.BOOL: "true or false",
        VarType.ARGV: "a list of words (or one string split like a shell would)",
    }[var.type]
    shown: object = "***" if var.secret else raw
    value = _converted(var.type, raw)
    if value is None:
        raise ConfigError(source, path, expected, shown)
    return value


def _converted(vtype: VarType, raw: object) -> Value | None:
    if isinstance(raw, bool):
        return raw if vtype is VarType.BOOL else None
    if vtype in (VarType.STR, VarType.PATH) and isinstance(raw, str | int | float):
        text = str(raw)
        return text if vtype is VarType.STR or text.startswith("/") else None
    if vtype is VarType.INT and isinstance(raw, int | str):
        try:
            return int(raw)
        except ValueError:
            return None
    if vtype is VarType.FLOAT and isinstance(raw, int | float | str):
        try:
            return float(raw)
        except ValueError:
            return None
    if vtype is VarType.BOOL and isinstance(raw, str) and raw.lower() in _BOOLS:
        return _BOOLS[raw.lower()]
    if vtype is VarType.ARGV:
        if isinstance(raw, str):
            try:
                return tuple(shlex.split(raw))
            except ValueError:
                return None
        if isinstance(raw, list) and all(isinstance(w, str) for w in raw):
            return tuple(raw)
    return None


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _variables(r: _Reader, raw: object) -> tuple[Variable, ...]:
    if raw is None:
        return ()
    found = []
    for name, spec in r.mapping(raw, "variables").items():
        path = f"variables.{name}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w*", name) or name in BUILTINS:
            raise r.fail(path, "a variable name (letters, digits, _; not run_id or host)", name)
        spec = r.mapping(spec, path, ("type", "default", "secret", "description"))
        try:
            vtype = VarType(spec.get("type", "str"))
        except ValueError:
            raise r.fail(f"{path}.type", f"one of {', '.join(t.value for t in VarType)}",
                         spec.get("type")) from None
        secret = spec.get("secret", False)
        if not isinstance(secret, bool):
            raise r.fail(f"{path}.secret", "true or false", secret)
        var = Variable(name, vtype, None, secret, str(spec.get("description", "")))
        if spec.get("default") is not None:
            var = Variable(name, vtype, convert(var, spec["default"], r.source, f"{path}.default"),
                           secret, var.description)
        found.append(var)
    return tuple(found)


def _action(r: _Reader, kind: str, raw: object, path: str, base: Path) -> Action:
    if kind == "run":
        if isinstance(raw, str):
            raw = {"command": raw}
        spec = r.mapping(raw, path, ("command", "ok_codes", "success_regex", "failure_regex",
                                     "until", "capture"))
        command = r.string(spec.get("command"), f"{path}.command")
        problem = quoting_problem(command)
        if problem:
            raise r.fail(f"{path}.command", f"a safe command template: {problem}", command)
        until = None
        if spec.get("until") is not None:
            upath = f"{path}.until"
            u = r.mapping(spec["until"], upath, ("regex", "not_regex", "attempts", "delay"))
            until = Until(r.integer(u.get("attempts"), f"{upath}.attempts", 1),
                          r.number(u.get("delay", 0), f"{upath}.delay"),
                          r.opt_regex(u, "regex", upath), r.opt_regex(u, "not_regex", upath))
            if until.regex is None and until.not_regex is None:
                raise r.fail(upath, "regex or not_regex (when to stop repeating)")
        capture = None
        if spec.get("capture") is not None:
            cpath = f"{path}.capture"
            c = r.mapping(spec["capture"], cpath, ("name", "regex", "secret"))
            name = r.string(c.get("name"), f"{cpath}.name")
            regex = r.regex(c.get("regex"), f"{cpath}.regex")
            if regex.groups < 1:
                raise r.fail(f"{cpath}.regex", "a regular expression with one capturing group", c["regex"])
            secret = c.get("secret", False)
            if not isinstance(secret, bool):
                raise r.fail(f"{cpath}.secret", "true or false", secret)
            capture = Capture(name, regex, secret)
        return RunAction(command, r.codes(spec.get("ok_codes", [0]), f"{path}.ok_codes"),
                         r.opt_regex(spec, "success_regex", path), r.opt_regex(spec, "failure_regex", path),
                         until, capture)
    if kind in ("put", "get"):
        spec = r.mapping(raw, path, ("src", "dest"))
        src, dest = r.string(spec.get("src"), f"{path}.src"), r.string(spec.get("dest"), f"{path}.dest")
        if kind == "put":
            return PutAction(src if src.startswith("/") else str(base / src), dest)
        return GetAction(src, dest)
    if kind == "http":
        if isinstance(raw, str):
            raw = {"url": raw}
        spec = r.mapping(raw, path, ("url", "status", "body_regex", "body_not_regex"))
        return HttpAction(r.string(spec.get("url"), f"{path}.url"),
                          r.codes(spec.get("status", [200]), f"{path}.status"),
                          r.opt_regex(spec, "body_regex", path), r.opt_regex(spec, "body_not_regex", path))
    if kind == "testinfra":
        if isinstance(raw, str):
            raw = {"module": raw}
        spec = r.mapping(raw, path, ("module",))
        module = Path(r.string(spec.get("module"), f"{path}.module"))
        module = module if module.is_absolute() else base / module
        if not module.is_file():
            raise r.fail(f"{path}.module", "an existing testinfra test module", str(module))
        return TestinfraAction(module)
    spec = r.mapping(raw, path, ("soak", "poll"))
    return WaitHealthyAction(r.number(spec.get("soak"), f"{path}.soak", 1),
                             r.number(spec.get("poll", 5), f"{path}.poll", 0.1))


_VAR_ONLY = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def _step(r: _Reader, raw: object, path: str, phase: Phase, base: Path) -> Step:
    spec = r.mapping(raw, path, ("name", "timeout", "retry", "after", *KINDS))
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise r.fail(path, f"exactly one of the step kinds {', '.join(KINDS)}", sorted(spec))
    name = r.string(spec.get("name"), f"{path}.name")
    action = _action(r, kinds[0], spec[kinds[0]], f"{path}.{kinds[0]}", base)
    default_timeout = action.soak + 60 if isinstance(action, WaitHealthyAction) else 60
    raw_timeout = spec.get("timeout", default_timeout)
    timeout_var = None
    m = _VAR_ONLY.fullmatch(raw_timeout.strip()) if isinstance(raw_timeout, str) else None
    if m:
        timeout_var, raw_timeout = m.group(1), default_timeout
    timeout = r.number(raw_timeout, f"{path}.timeout", 1)
    retry = Retry()
    if spec.get("retry") is not None:
        rt = r.mapping(spec["retry"], f"{path}.retry", ("attempts", "delay"))
        retry = Retry(r.integer(rt.get("attempts", 1), f"{path}.retry.attempts", 1),
                      r.number(rt.get("delay", 0), f"{path}.retry.delay"))
    after = frozenset({"update", "rollback"})
    if spec.get("after") is not None:
        if phase is not Phase.VERIFY or spec["after"] not in ("update", "rollback"):
            raise r.fail(f"{path}.after", "update or rollback (only on verify steps)", spec["after"])
        after = frozenset({spec["after"]})
    return Step(name, action, timeout, retry, after, timeout_var)


def _templates(step: Step) -> list[tuple[str, str]]:
    a = step.action
    if isinstance(a, RunAction):
        return [("command", a.command)]
    if isinstance(a, PutAction | GetAction):
        return [("src", a.src), ("dest", a.dest)]
    if isinstance(a, HttpAction):
        return [("url", a.url)]
    return []


def load_playbook(path: str | Path) -> Playbook:
    """Read and validate a playbook file."""
    path = Path(path)
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "(file)", "a readable playbook file", str(exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "(file)", "valid YAML", str(exc)) from None
    r = _Reader(source)
    top = r.mapping(raw, "(top)", ("name", "description", "applies_to", "lock_file", "variables",
                                   "phases", "backup_location", "rollback_notice"))
    name = r.string(top.get("name"), "name")
    applies = top.get("applies_to", [])
    if not isinstance(applies, list) or not all(isinstance(a, str) for a in applies):
        raise r.fail("applies_to", "a list of box kinds", applies)
    variables = _variables(r, top.get("variables"))
    lock_file = r.string(top.get("lock_file", "/var/lock/boxkeeper-update.lock"), "lock_file")
    phases_raw = r.mapping(top.get("phases"), "phases", tuple(p.value for p in Phase))
    phases: dict[Phase, tuple[Step, ...]] = {}
    for phase in Phase:
        items = phases_raw.get(phase.value) or []
        if not isinstance(items, list):
            raise r.fail(f"phases.{phase.value}", "a list of steps", items)
        phases[phase] = tuple(_step(r, item, f"phases.{phase.value}[{i}]", phase, path.parent)
                              for i, item in enumerate(items))
    for required in (Phase.UPDATE, Phase.VERIFY, Phase.ROLLBACK):
        if not phases[required]:
            raise r.fail(f"phases.{required.value}", "at least one step")
    backup_location = top.get("backup_location", "")
    if not isinstance(backup_location, str):
        raise r.fail("backup_location", "a path template", backup_location)
    notice = top.get("rollback_notice", "")
    if not isinstance(notice, str):
        raise r.fail("rollback_notice", "a text", notice)
    playbook = Playbook(name, source, str(top.get("description", "")), tuple(applies), lock_file,
                        variables, phases, backup_location, notice.strip())
    _check_names(r, playbook)
    return playbook


def _check_names(r: _Reader, playbook: Playbook) -> None:
    known = {v.name for v in playbook.variables} | set(BUILTINS)
    captured = set(playbook.captures())
    checks: list[tuple[str, str]] = [("lock_file", playbook.lock_file),
                                     ("backup_location", playbook.backup_location)]
    if quoting_problem(playbook.lock_file):
        raise r.fail("lock_file", "a path template without quotes", playbook.lock_file)
    for phase, steps in playbook.phases.items():
        for i, step in enumerate(steps):
            checks += [(f"phases.{phase.value}[{i}].{key}", t) for key, t in _templates(step)]
            if step.timeout_var is not None:
                var = playbook.variable(step.timeout_var)
                if var is None or var.type not in (VarType.INT, VarType.FLOAT):
                    raise r.fail(f"phases.{phase.value}[{i}].timeout",
                                 "a number or {{ var }} of an int/float variable",
                                 f"{{{{ {step.timeout_var} }}}}")
    for path, template in checks:
        for name in placeholders(template):
            ok = name[len("captured."):] in captured if name.startswith("captured.") else name in known
            if not ok:
                raise r.fail(path, "only declared variables, run_id, host, or captured.<name> of a capture",
                             f"{{{{ {name} }}}}")


def resolve_variables(playbook: Playbook, overrides: Mapping[str, str]) -> dict[str, Value]:
    """Defaults overridden by ``--var k=v`` (type-checked); every variable must end with a value."""
    values: dict[str, Value] = {}
    for key in overrides:
        if playbook.variable(key) is None:
            names = ", ".join(v.name for v in playbook.variables)
            raise ConfigError("--var", key, f"a variable of {playbook.name} ({names})", key)
    for var in playbook.variables:
        if var.name in overrides:
            values[var.name] = convert(var, overrides[var.name], "--var", var.name)
        elif var.default is not None:
            values[var.name] = var.default
        else:
            raise ConfigError("--var", var.name, f"a value (variable {var.name} has no default)")
    return values


def parse_var_args(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` → ``{"k": "v"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--var", item, "KEY=VALUE")
        out[key] = value
    return out


def find_playbook(name: str, search_dir: Path) -> Path:
    """A path to an existing file, or NAME / NAME.yaml in the playbooks directory."""
    for candidate in (Path(name), search_dir / name, search_dir / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(name, "(file)", f"a playbook file (looked in {search_dir})")
