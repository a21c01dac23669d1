"""The scalar types of step options: annotated for configkit, worded the way playbook errors read.

``Seconds`` is "a number >= 1", ``Attempts`` "an integer >= 1", ``Codes`` one code or a list;
``Regex`` compiles in multi-line mode and says why a pattern does not compile; ``Template`` and
``CommandTemplate`` are ``{{ }}`` templates (a command template must be safe to render:
:func:`~controller.workflows.template.quoting_problem`). Errors raised as :class:`Invalid` carry
the value given, also when a kind's string shorthand (``run: "cmd"``) set the option.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import PlainValidator

from controller.configkit import Expect, Invalid
from controller.workflows.template import quoting_problem

IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
VAR_ONLY = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


def _at_least(minimum: float, integer: bool = False) -> Callable[[object], float]:
    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float) \
                or value < minimum:
            raise ValueError(minimum)
        return value
    return parse


def parse_codes(value: object) -> tuple[int, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items):
        raise ValueError("codes")
    return tuple(items)


def parse_timeout(value: object) -> float | str:
    """A number of seconds (>= 1), or ``"{{ var }}"``: the variable's name (its type is checked
    once the variables are known)."""
    if isinstance(value, str) and (m := VAR_ONLY.fullmatch(value.strip())):
        return m.group(1)
    return float(_at_least(1)(value))


def parse_attempts(value: object) -> int | str:
    """An integer >= 1, or ``"{{ var }}"``: the name of an int variable (checked once the variables
    are known), e.g. ``until: {attempts: "{{ update_attempts }}"}``."""
    if isinstance(value, str) and (m := VAR_ONLY.fullmatch(value.strip())):
        return m.group(1)
    return int(_at_least(1, integer=True)(value))


def parse_after(value: object) -> str:
    if value not in ("update", "rollback"):
        raise ValueError("after")
    return str(value)


def parse_identifier(value: object) -> str:
    if not isinstance(value, str) or not IDENTIFIER.fullmatch(value):
        raise ValueError("identifier")
    return value


def parse_path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("path")
    return Path(value)


def check_regex(value: object) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str) or not value:
        raise Invalid("", "a regular expression", value)
    try:
        return re.compile(value, re.MULTILINE)
    except re.error as exc:
        raise Invalid("", f"a valid regular expression ({exc})", value) from None


def check_template(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("", "a non-empty string", value)
    return value


def check_command(value: object) -> str:
    problem = quoting_problem(check_template(value))
    if problem:
        raise Invalid("", f"a safe command template: {problem}", value)
    return str(value)


Seconds = Annotated[float, Expect("a number >= 1", _at_least(1))]
Delay = Annotated[float, Expect("a number >= 0", _at_least(0))]
PollInterval = Annotated[float, Expect("a number >= 0.1", _at_least(0.1))]
Attempts = Annotated[int, Expect("an integer >= 1", _at_least(1, integer=True))]
AttemptsOrVar = Annotated[int | str, Expect("an integer >= 1 or {{ var }} of an int variable",
                                            parse_attempts)]
Codes = Annotated[tuple[int, ...], Expect("an integer or a non-empty list of integers", parse_codes)]
Regex = Annotated[re.Pattern[str], PlainValidator(check_regex)]
Template = Annotated[str, PlainValidator(check_template)]
CommandTemplate = Annotated[str, PlainValidator(check_command)]
Identifier = Annotated[str, Expect("a name of letters, digits and _ (used as {{ captured.<name> }})",
                                   parse_identifier)]
StepTimeout = Annotated[float | str, Expect("a number >= 1", parse_timeout)]
After = Annotated[str, Expect("update or rollback (only on verify steps)", parse_after)]
LocalPath = Annotated[Path, Expect("a file path", parse_path)]  # a str from YAML, a Path from code
