"""``{{ var }}`` interpolation into step templates.

Two renderings:

* :func:`render_shell` for commands: every value is ``shlex.quote``'d (an ``argv`` value is a list
  of words, each quoted). There is no raw mode: a playbook author writes the shape of a command,
  values never become shell syntax. A placeholder written inside quotes (``'{{ x }}'``) is refused
  when the playbook is loaded (:func:`quoting_problem`), because quoting it again would change it.
* :func:`render_plain` for URLs and file paths of ``http`` / ``put`` / ``get`` steps (no shell).

Secrets (secret variables, secret captures) never become part of a command's text: a secret
placeholder renders as a reference to an environment variable (``"$BOXKEEPER_SECRET_<name>"``)
and :func:`secret_env` gives its value, which the executor hands to the remote shell over the SSH
channel (never in an argv: the box's process table is readable by every local user). So that the
shell does not expand it into an argv either, a secret may only be the value of an assignment at
the start of a simple command (``MYSQL_PWD={{ captured.db_password }} mysql …``: the shell puts it
into that command's environment); :func:`secret_problem` refuses every other place when the
playbook is loaded (``env MYSQL_PWD={{ x }}`` or ``mysql -p{{ x }}`` would show it to ``ps``).

Which options of a step are templates is said by its kind (``templates`` in steps/base.py); the
loader checks their placeholders. Secret values are masked by :class:`controller.redact.Redactor`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping

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


def secret_env_name(name: str) -> str:
    """The environment variable a secret placeholder stands for (``captured.x`` → ``…_captured_x``)."""
    return "BOXKEEPER_SECRET_" + name.replace(".", "_")


def render_shell(template: str, values: Mapping[str, Value], secrets: Collection[str] = ()) -> str:
    """Render a command template; every value is shell-quoted; a name in ``secrets`` becomes a
    reference to its environment variable (see :func:`secret_env`). Unknown names raise KeyError."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        value = _lookup(name, values)
        return f'"${secret_env_name(name)}"' if name in secrets else quote_value(value)

    return PLACEHOLDER.sub(one, template)


def secret_env(template: str, values: Mapping[str, Value], secrets: Collection[str]) -> dict[str, str]:
    """The environment a command rendered with ``secrets`` needs: variable name → secret value."""
    return {secret_env_name(n): plain_value(_lookup(n, values))
            for n in placeholders(template) if n in secrets}


# What may stand before a secret placeholder within its simple command: assignments only.
_COMMAND_START = re.compile(r"(?:^|[;&|(){}\n]|\$\(|\b(?:then|do|else|elif|if|while|until|!))\s*"
                            r"(?:export\s+)?(?:[A-Za-z_]\w*=(?:\S*)\s+)*[A-Za-z_]\w*=$")


# The documented password options of the 1C tools, which take the infobase password only in their
# argv (DOMAIN.md: ``1cv8 DESIGNER … /P pwd``, ``rac … --infobase-pwd=P``): a step that says
# ``password_in_argv: true`` may use a secret right after one of them, and nowhere else.
ARGV_PASSWORD_OPTIONS = ("/P ", "--infobase-pwd=")


def secret_problem(template: str, secrets: Collection[str], *, password_in_argv: bool = False) -> str | None:
    """Say why a secret placeholder of a command template could reach an argv, or None.

    ``password_in_argv`` (a ``run`` step's own, explicit option) also accepts a secret as the value
    of one of :data:`ARGV_PASSWORD_OPTIONS`: the only way those tools take a password."""
    for m in PLACEHOLDER.finditer(template):
        before = template[:m.start()]
        if password_in_argv and m.group(1) in secrets and before.endswith(ARGV_PASSWORD_OPTIONS):
            continue
        if m.group(1) in secrets and not _COMMAND_START.search(before):
            return (f"the secret {{{{ {m.group(1)} }}}} only as an assignment at the start of a command "
                    f"(NAME={{{{ {m.group(1)} }}}} command …), never in an argument: arguments are "
                    "visible to every user of the host in its process table")
    return None


def render_plain(template: str, values: Mapping[str, Value]) -> str:
    """Render a URL or path template without quoting. Unknown names raise KeyError."""
    return PLACEHOLDER.sub(lambda m: plain_value(_lookup(m.group(1), values)), template)

