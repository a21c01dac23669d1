"""``{{ var }}`` interpolation into step templates.

Two renderings:

* :func:`render_shell` for commands: every value is ``shlex.quote``'d (an ``argv`` value is a list
  of words, each quoted). There is no raw mode: a playbook author writes the shape of a command,
  values never become shell syntax. A placeholder written inside quotes (``'{{ x }}'``) is refused
  when the playbook is loaded (:func:`quoting_problem`), because quoting it again would change it.
* :func:`render_plain` for URLs and file paths of ``http`` / ``put`` / ``get`` steps (no shell).

Which options of a step are templates is said by its kind (``templates`` in steps/base.py); the
loader checks their placeholders. Secret values are masked by :class:`controller.redact.Redactor`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

Value = str | int | float | bool | tuple[str, ...]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\s*\}\}")


def placeholders(template: str) -> list[str]:
    """Names used by a template, in order (``captured.x`` keeps its prefix)."""
    return [m.group(1) for m in PLACEHOLDER.finditer(template)]


def quoting_problem(template: str) -> str | None:
    """Say why a command template is unsafe to render, or None.

    Walks the template as the shell would (single quotes, double quotes, backslash escapes) and
    refuses a placeholder that sits inside quotes.
    """
    i, quote = 0, ""
    while i < len(template):
        match = PLACEHOLDER.match(template, i)
        if match:
            if quote:
                return (
                    f"placeholder {{{{ {match.group(1)} }}}} inside {quote} quotes "
                    "(values are quoted for you: write it bare)"
                )
            i = match.end()
            continue
        ch = template[i]
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if quote == "" and ch in "'\"":
            quote = ch
        elif ch == quote:
            quote = ""
        i += 1
    return None


def _lookup(name: str, values: Mapping[str, Value]) -> Value:
    if name not in values:
        raise KeyError(name)
    return values[name]


def quote_value(value: Value) -> str:
    if isinstance(value, tuple):
        return " ".join(shlex.quote(word) for word in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return shlex.quote(str(value))


def plain_value(value: Value) -> str:
    if isinstance(value, tuple):
        return " ".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_shell(template: str, values: Mapping[str, Value]) -> str:
    """Render a command template; every value is shell-quoted. Unknown names raise KeyError."""
    return PLACEHOLDER.sub(lambda m: quote_value(_lookup(m.group(1), values)), template)


def render_plain(template: str, values: Mapping[str, Value]) -> str:
    """Render a URL or path template without quoting. Unknown names raise KeyError."""
    return PLACEHOLDER.sub(lambda m: plain_value(_lookup(m.group(1), values)), template)

