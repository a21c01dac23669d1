"""Playbook loading: valid playbooks load; every mistake is named by file, key path and expectation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from controller.errors import ConfigError
from controller.workflows.loader import find_playbook, load_playbook, parse_var_args, resolve_variables
from controller.workflows.playbook import Phase, VarType
from controller.workflows.steps.http import HttpAction
from controller.workflows.steps.run import RunAction

REPO = Path(__file__).resolve().parents[3]

MINIMAL = """
name: demo
variables:
  docroot: {type: path, default: /home/bitrix/www}
  tries: {type: int, default: 3}
  password: {type: str, secret: true}
phases:
  preflight:
    - name: version
      run:
        command: cat {{ docroot }}/v
        capture: {name: v, regex: 'V=(\\S+)'}
  update:
    - name: update
      timeout: 5
      run:
        command: ./update {{ docroot }}
        ok_codes: [0, 2]
        until: {not_regex: 'Restart the command', attempts: 3}
  verify:
    - name: portal
      after: update
      http: {url: 'http://x/{{ captured.v }}', status: 200, body_not_regex: 'Fatal'}
  rollback:
    - name: restore
      run: restore {{ docroot }} {{ run_id }}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_playbook_loads_with_typed_steps(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, MINIMAL))
    assert pb.name == "demo"
    assert pb.variable("tries") is not None and pb.variable("tries").type is VarType.INT  # type: ignore[union-attr]
    update = pb.steps(Phase.UPDATE)[0]
    assert isinstance(update.action, RunAction)
    assert update.timeout == 5
    assert update.action.ok_codes == (0, 2)
    assert update.action.until is not None and update.action.until.attempts == 3
    verify = pb.steps(Phase.VERIFY)[0]
    assert isinstance(verify.action, HttpAction) and verify.after == frozenset({"update"})
    assert pb.steps(Phase.BACKUP) == ()
    assert set(pb.captures()) == {"v"}


def test_var_overrides_are_type_checked(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, MINIMAL))
    values = resolve_variables(pb, {"tries": "7", "password": "pw"})
    assert values == {"docroot": "/home/bitrix/www", "tries": 7, "password": "pw"}
    with pytest.raises(ConfigError, match=r"--var: tries: expected an integer, got 'many'"):
        resolve_variables(pb, {"tries": "many", "password": "pw"})
    with pytest.raises(ConfigError, match="docroot: expected an absolute path"):
        resolve_variables(pb, {"docroot": "relative/dir", "password": "pw"})
    with pytest.raises(ConfigError, match="nosuch: expected a variable of demo"):
        resolve_variables(pb, {"nosuch": "1", "password": "pw"})
    with pytest.raises(ConfigError, match="password: expected a value"):
        resolve_variables(pb, {})


def test_secret_values_are_not_shown_in_errors(tmp_path: Path) -> None:
    text = MINIMAL.replace("password: {type: str, secret: true}", "password: {type: int, secret: true}")
    pb = load_playbook(write(tmp_path, text))
    with pytest.raises(ConfigError) as info:
        resolve_variables(pb, {"password": "hunter2"})
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_parse_var_args() -> None:
    assert parse_var_args(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_var_args(["novalue"])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("name: demo", "name: ''", r"pb.yaml: name: expected a non-empty string"),
        ("timeout: 5", "timeout: soon", r"phases.update\[0\].timeout: expected a number >= 1, got 'soon'"),
        ("ok_codes: [0, 2]", "ok_codes: [zero]", r"phases.update\[0\].run.ok_codes: expected an integer"),
        ("attempts: 3}", "attempts: 0}", r"run.until.attempts: expected an integer >= 1 or .*, got 0"),
        ("attempts: 3}", "attempts: '{{ docroot }}'}",
         r"phases.update\[0\].run.until.attempts: expected an integer >= 1 or \{\{ var \}\} of an int "
         r"variable, got '\{\{ docroot \}\}'"),
        ("attempts: 3}", "attempts: '{{ nope }}'}", r"run.until.attempts: expected an integer >= 1 or"),
        ("run: restore {{ docroot }}", "run: restore {{ outcome }}",
         r"phases.rollback\[0\].run.command: expected \{\{ outcome \}\} only in finally steps"),
        ("regex: 'V=(\\S+)'", "regex: 'V=\\S+'", r"capture.regex: expected a regular expression with one"),
        ("capture: {name: v, regex: 'V=(\\S+)'}",
         "captures: [{name: v, regex: 'V=(\\S+)'}, {name: w, regex: 'W=\\S+'}]",
         r"phases.preflight\[0\].run.captures\[1\].regex: expected a regular expression with one"),
        ("after: update", "after: always", r"phases.verify\[0\].after: expected update or rollback"),
        ("type: int, default: 3", "type: integer, default: 3", r"variables.tries.type: expected one of str"),
        ("type: int, default: 3", "type: int, default: x", r"variables.tries.default: expected an integer"),
        (
            "run: restore {{ docroot }}",
            "run: restore {{ nope }}",
            r"phases.rollback\[0\].run.command: expected only",
        ),
        ("{{ captured.v }}", "{{ captured.w }}", r"phases.verify\[0\].http.url: expected only declared"),
        (
            "      run: restore",
            "      bogus: 1\n      run: restore",
            r"phases.rollback\[0\].bogus: expected no such key; expected one of after, get, http, name",
        ),
        (
            "      http:",
            "      run: x\n      http:",
            r"phases.verify\[0\]: expected exactly one of the step kinds",
        ),
        ("command: ./update {{ docroot }}", "command: ./update '{{ docroot }}'", "inside ' quotes"),
        ("command: ./update {{ docroot }}", 'command: sh -c "cd {{ docroot }}"', 'inside " quotes'),
        ("command: ./update {{ docroot }}", "command: ./update --password {{ password }}",
         r"phases.update\[0\].run.command: expected the secret \{\{ password \}\} only as an assignment"),
        ("command: ./update {{ docroot }}", "command: env PW={{ password }} ./update",
         r"process table"),
        ("command: ./update {{ docroot }}", "command: echo {{ password }} | ./update", r"process table"),
        ("command: ./update {{ docroot }}", "command: 1cv8 DESIGNER /P {{ password }}",
         r"phases.update\[0\].run.command: expected the secret .* only as an assignment"),
        ("command: ./update {{ docroot }}",
         "command: 1cv8 DESIGNER /N {{ password }} /P x\n        password_in_argv: true", r"process table"),
        ("ok_codes: [0, 2]", "ok_codes: [0, 2]\n        password_in_argv: yes please",
         r"phases.update\[0\].run.password_in_argv: expected true or false"),
        (
            "  rollback:\n    - name: restore\n      run: restore {{ docroot }} {{ run_id }}\n",
            "",
            r"phases.rollback: expected at least one step",
        ),
    ],
)
def test_mistakes_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in MINIMAL, old
    with pytest.raises(ConfigError, match=message):
        load_playbook(write(tmp_path, MINIMAL.replace(old, new)))


def test_until_attempts_may_name_an_int_variable(tmp_path: Path) -> None:
    pb = load_playbook(write(tmp_path, MINIMAL.replace("attempts: 3}", "attempts: '{{ tries }}'}")))
    until = pb.steps(Phase.UPDATE)[0].action.until  # type: ignore[attr-defined]
    assert until.attempts_var == "tries"
    assert until.count(resolve_variables(pb, {"tries": "7", "password": "x"})) == 7
    assert until.count({"tries": 0}) == 0  # a bad value makes the step fail without running (steps/run.py)


def test_finally_steps_may_use_the_outcome(tmp_path: Path) -> None:
    text = MINIMAL + "  finally:\n    - name: prune\n      run: prune {{ outcome }}\n"
    assert load_playbook(write(tmp_path, text)).steps(Phase.FINALLY)[0].name == "prune"


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid YAML"):
        load_playbook(write(tmp_path, "name: [unclosed"))
    with pytest.raises(ConfigError, match="readable playbook file"):
        load_playbook(tmp_path / "absent.yaml")


def test_shipped_playbooks_load() -> None:
    path = find_playbook("bitrix-modules-update", REPO / "playbooks")
    pb = load_playbook(path)
    assert pb.variable("docroot") is not None
    assert pb.variable("docroot").default == "/home/bitrix/www"  # type: ignore[union-attr]
    assert pb.steps(Phase.ROLLBACK) and pb.steps(Phase.FINALLY)


def test_every_shipped_playbook_loads() -> None:
    """`boxkeeper serve` loads every playbook of the directory at start (to know the declared
    variables): one that does not load stops the controller."""
    paths = sorted((REPO / "playbooks").glob("*.yaml"))
    assert len(paths) >= 5
    for path in paths:
        assert load_playbook(path).steps(Phase.VERIFY), path


def test_shipped_1c_playbook_loads_and_hands_the_password_to_argv_only_where_it_says_so() -> None:
    pb = load_playbook(find_playbook("1c-config-update", REPO / "playbooks"))
    assert pb.steps(Phase.ROLLBACK) and pb.steps(Phase.FINALLY)
    in_argv = [step.name for phase in Phase for step in pb.steps(phase)
               if isinstance(step.action, RunAction) and "{{ captured.ib_password }}" in step.action.command]
    assert in_argv and all(isinstance(step.action, RunAction) and step.action.password_in_argv
                           for phase in Phase for step in pb.steps(phase) if step.name in in_argv)
    reading = [s for s in pb.steps(Phase.PREFLIGHT) if s.name == "infobase password from its file"]
    assert reading and not reading[0].action.password_in_argv  # type: ignore[attr-defined]
