"""``http``: a GET judged by status AND body, sent from the controller or from the box itself.

An error page served with status 200 (``DB query error``) fails the step through ``body_not_regex``.
The timeline records the status as the exit code and the body's tail as the output.

``from: controller`` (the default) sends the request from the controller with httpx. ``from:
host`` runs ``curl`` on the box over the run's SSH connection: for portals behind NAT, or that
answer only on the box's own name. The box's response is judged exactly as the controller's: curl
writes the body into a private temp dir on the box (``mktemp -d``, mode 0700), the controller
fetches it over SFTP, and the status, the ``Content-Type`` (for the charset) and the whole body go
through the same checks. The URL never appears on a command line of the box: it reaches the box's
shell in the command's environment and curl reads it from a config file in that temp dir.

TLS is verified either way (the box's CA store for curl); ``verify_tls: false`` turns it off, for a
portal with a self-signed certificate, only when a playbook says so. Both options may be a
variable (``from: "{{ probe_from }}"``); its value is checked when the run starts
(:meth:`HttpAction.value_problem`).
"""

from __future__ import annotations

import math
import re
import shlex
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Annotated, ClassVar

import httpx
from pydantic import Field

from controller.configkit import Expect, Invalid
from controller.workflows.errors import ExecutorError
from controller.workflows.executor import Command, CommandResult
from controller.workflows.steps.base import Step, StepContext, StepKind, StepOutcome, timeout_of
from controller.workflows.steps.fields import VAR_ONLY, Codes, Regex, Template
from controller.workflows.template import Value, plain_value, render_plain

BODY_TAIL = 4000
SIDES = ("controller", "host")
MAX_REDIRECTS = 20  # httpx's default, given to curl as well
CURL_SLACK = 10.0  # the command's timeout beyond curl's own --max-time, so that curl reports first
URL_ENV = "BOXKEEPER_HTTP_URL"
NO_CURL = "BOXKEEPER_NO_CURL"
_TRUE_FALSE = {"true": True, "false": False}


def _side(value: object) -> str:
    if isinstance(value, str) and (value in SIDES or VAR_ONLY.fullmatch(value.strip())):
        return value.strip()
    raise ValueError("side")


def _flag(value: object) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and VAR_ONLY.fullmatch(value.strip()):
        return value.strip()
    raise ValueError("flag")


Side = Annotated[str, Expect('controller or host (or "{{ var }}" naming a variable with one of them)', _side)]
Flag = Annotated[bool | str, Expect('true or false (or "{{ var }}" naming a bool variable)', _flag)]


class HttpAction(StepKind):
    """``http: {url, status, body_regex, body_not_regex, from, verify_tls}`` or ``http: URL``."""

    kind: ClassVar[str] = "http"
    shorthand: ClassVar[str | None] = "url"
    templates: ClassVar[tuple[str, ...]] = ("url", "from_", "verify_tls")

    url: Template
    status: Codes = (200,)
    body_regex: Regex | None = None
    body_not_regex: Regex | None = None
    from_: Side = Field("controller", alias="from")
    verify_tls: Flag = True

    # ------------------------------------------------------------------ values of variables

    def side(self, values: Mapping[str, Value]) -> str:
        return _rendered(self.from_, values)

    def verifies(self, values: Mapping[str, Value]) -> bool:
        if isinstance(self.verify_tls, bool):
            return self.verify_tls
        return _TRUE_FALSE.get(_rendered(self.verify_tls, values), True)

    def value_problem(self, values: Mapping[str, Value]) -> Invalid | None:
        if (side := self.side(values)) not in SIDES:
            return Invalid("from", f"controller or host (the value of {self.from_})", side)
        if isinstance(self.verify_tls, str) and _rendered(self.verify_tls, values) not in _TRUE_FALSE:
            return Invalid("verify_tls", f"true or false (the value of {self.verify_tls})",
                           _rendered(self.verify_tls, values))
        return None

    # ------------------------------------------------------------------ one attempt

    def run(self, step: Step, ctx: StepContext) -> StepOutcome:
        url = render_plain(self.url, ctx.values)
        timeout = timeout_of(step, ctx.values)
        verify = self.verifies(ctx.values)
        on_host = self.side(ctx.values) == "host"
        shown = f"GET {url}" + (" (from the host, curl)" if on_host else "")
        shown += "" if verify else " (TLS not verified)"
        started = ctx.clock()
        fetch = _from_host if on_host else _from_controller
        got = fetch(ctx, url, timeout, verify)
        if isinstance(got, str):
            return StepOutcome(False, shown, None, ctx.clock() - started, message=got)
        body = got.text
        problem = self.judge(got.status_code, body)
        return StepOutcome(problem is None, shown, got.status_code, ctx.clock() - started,
                           ctx.redact(body)[-BODY_TAIL:], "", problem or "")  # masked, then cut

    def judge(self, status: int, body: str) -> str | None:
        """Why the response is a failure, or None (the same for both sides)."""
        if status not in self.status:
            return f"HTTP {status}, expected {list(self.status)}"
        if self.body_not_regex and (m := self.body_not_regex.search(body)):
            return f"body matches the error pattern: {m.group(0)[:200]!r}"
        if self.body_regex and not self.body_regex.search(body):
            return f"body lacks {self.body_regex.pattern!r}"
        return None


def _rendered(option: str, values: Mapping[str, Value]) -> str:
    m = VAR_ONLY.fullmatch(option)
    if m is None:
        return option
    value = values.get(m.group(1))
    return "" if value is None else plain_value(value)


# ---------------------------------------------------------------------------------------------
# From the controller


def _from_controller(ctx: StepContext, url: str, timeout: float, verify: bool) -> httpx.Response | str:
    try:
        if ctx.http is not None and verify:
            return ctx.http.get(url, timeout=timeout, follow_redirects=True)
        with httpx.Client(verify=verify) as client:  # TLS verified unless the playbook says not to
            return client.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"request failed: {exc}"


# ---------------------------------------------------------------------------------------------
# From the host: curl over the run's SSH connection

_STATUS = re.compile(r"^BOXKEEPER_HTTP_STATUS=(\d{3})$", re.MULTILINE)
_TYPE = re.compile(r"^BOXKEEPER_CONTENT_TYPE=(.*)$", re.MULTILINE)
_EXIT = re.compile(r"^BOXKEEPER_CURL_EXIT=(\d+)$", re.MULTILINE)
_DIR = re.compile(r"^BOXKEEPER_DIR=(/\S+)$", re.MULTILINE)


def curl_command(timeout: float, verify: bool) -> str:
    """The command run on the box (fixed text: the URL comes from the environment)."""
    insecure = "" if verify else " --insecure"
    return (
        f"command -v curl >/dev/null 2>&1 || {{ echo {NO_CURL} >&2; exit 127; }}; "
        'd=$(mktemp -d "${TMPDIR:-/tmp}/boxkeeper-http.XXXXXX") || exit 1; '
        'echo "BOXKEEPER_DIR=$d"; '
        f'printf \'url = "%s"\\n\' "${URL_ENV}" > "$d/curlrc"; '
        f"curl --silent --show-error --globoff --location --max-redirs {MAX_REDIRECTS} "
        "--proto =http,https --proto-redir =http,https "
        f"--max-time {math.ceil(timeout)}{insecure} --config \"$d/curlrc\" --output \"$d/body\" "
        "--write-out 'BOXKEEPER_HTTP_STATUS=%{http_code}\\nBOXKEEPER_CONTENT_TYPE=%{content_type}\\n'; "
        'echo "BOXKEEPER_CURL_EXIT=$?"; [ -f "$d/body" ] || : > "$d/body"'
    )


def _curl_config_value(url: str) -> str:
    """The URL as a double-quoted value of curl's config file (backslash and quote escaped)."""
    return url.replace("\\", "\\\\").replace('"', '\\"')


def _from_host(ctx: StepContext, url: str, timeout: float, verify: bool) -> httpx.Response | str:
    if any(ch in url for ch in "\r\n\0"):
        return "the URL holds a line break or NUL: not sent"
    shown = f"curl {url}" + ("" if verify else " --insecure")
    result = ctx.executor.run(Command(curl_command(timeout, verify), ctx.redact(shown),
                                      {URL_ENV: _curl_config_value(url)}), timeout + CURL_SLACK)
    if result.exit_code == 127 and NO_CURL in result.stderr_tail:
        return "curl is not installed on the host (an http step with from: host runs curl there)"
    found_dir = _DIR.search(result.stdout_tail)
    if found_dir is None:
        return f"curl on the host did not run (exit {result.exit_code}): " \
               f"{_last_line(result.stderr_tail or result.stdout_tail)}"
    directory = found_dir.group(1)
    try:
        got = _response(ctx, result, directory, timeout)
    except BaseException:
        with suppress(ExecutorError):  # the first error is the one to report
            _remove(ctx, directory)
        raise
    _remove(ctx, directory)
    return got


def _response(ctx: StepContext, result: CommandResult, directory: str,
              timeout: float) -> httpx.Response | str:
    """What curl got: the status, the content type and the body fetched from the box."""
    out = result.stdout_tail
    if result.timed_out:
        return f"request failed on the host: no answer within {timeout + CURL_SLACK:.0f} s"
    code, status = _EXIT.search(out), _STATUS.search(out)
    if code is None:
        return f"curl on the host did not finish (exit {result.exit_code}): {_last_line(result.stderr_tail)}"
    if code.group(1) != "0" or status is None:
        return f"request failed on the host: curl exit {code.group(1)}: {_curl_error(result.stderr_tail)}"
    with tempfile.TemporaryDirectory(prefix="boxkeeper-http-") as tmp:
        local = Path(tmp) / "body"
        ctx.executor.get(f"{directory}/body", str(local))
        body = local.read_bytes()
    found_type = _TYPE.search(out)
    content_type = found_type.group(1).strip() if found_type else ""
    headers = {"content-type": content_type} if content_type else {}
    return httpx.Response(int(status.group(1)), headers=headers, content=body)


def _remove(ctx: StepContext, directory: str) -> None:
    quoted = shlex.quote(directory)
    ctx.executor.run(Command(f"rm -rf -- {quoted}", f"rm -rf -- {quoted}"), 30)


def _curl_error(text: str) -> str:
    """curl's own error line (``curl: (60) SSL certificate problem: …``; advice follows it)."""
    found = re.search(r"^curl: \(\d+\).*$", text, re.MULTILINE)
    return found.group(0)[:300] if found else _last_line(text)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"
