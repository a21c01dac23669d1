"""Enrolment: the agent onto a host over SSH, from the controller, in one command.

``boxkeeper hosts enroll HOST`` runs :func:`enrol`, one named step after the other; each says what
it did (``done``) or that what it found was right already (``unchanged``), so a second run changes
nothing that is right::

    connect   SSH with the pinned host key (controller/workflows/ssh.py), root, x86_64
    inventory the host in the database, as in the config
    install   copy the bundle (python -m agent.bundle) to a temporary directory, run its install.sh
              (with the bundle's version installed: repairs only; another version: left alone
              without ``upgrade``)
    config    boxkeeper-agent discover --controller-url … --write /etc/boxkeeper/agent.yaml (kept when
              it exists and pushes to this controller; else rewritten, the one before kept as
              agent.yaml.before-enrol), then validated as the user boxkeeper
    token     kept when the box's token file hashes to an active token of the host; else a new one
              (the old revoked), sent by SFTP (never in a command line) and installed 0600 boxkeeper
    service   started, or restarted when the config or the token changed (install.sh: systemd or the
              init script)
    report    waits until a report from the agent reaches the controller (the database)

A failure raises :class:`EnrolmentError` naming the host and the step. ``upgrade`` moves an
installed agent to the bundle's version; when the new agent does not report within the deadline,
the previous version is put back (``install.sh rollback``), started, and must report again.
:func:`uninstall` stops and removes the agent and revokes the host's token.

Paths on the host are under its ``agent.root`` (``/`` for a real box; a test box's directory).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller import inventory
from controller.config import ControllerConfig, HostConfig
from controller.errors import ControllerError
from controller.store.db import Database
from controller.workflows.errors import ExecutorError
from controller.workflows.executor import Command, CommandResult, Executor

REPO = Path(__file__).resolve().parents[1]
TOKEN = "/etc/boxkeeper/agent.token"  # noqa: S105 (a path, not a secret)
CONFIG = "/etc/boxkeeper/agent.yaml"
INSTALLED = "/opt/boxkeeper"
Clock = Callable[[], float]


class EnrolmentError(ControllerError):
    """A step of enrolling a host failed: ``host``, ``step`` and what went wrong."""

    def __init__(self, host: str, step: str, message: str) -> None:
        super().__init__(f"{host}: step {step} failed: {message}")
        self.host = host
        self.step = step


@dataclass(frozen=True)
class StepDone:
    step: str
    changed: bool
    detail: str

    def line(self, host: str) -> str:
        return f"{host}: {self.step:<9} {'done' if self.changed else 'unchanged'}: {self.detail}"


@dataclass(frozen=True)
class Bundle:
    """The agent bundle's tarball and the version it installs."""

    path: Path
    version: str

    @property
    def top(self) -> str:
        return f"boxkeeper-agent-{self.version}"


def bundle_file(version: str, out: Path) -> Bundle:
    """The bundle of ``version`` in ``out`` (``<state_dir>/bundles``), built with
    ``python -m agent.bundle`` when it is not there yet (that downloads wheels: the controller
    machine needs PyPI once; the boxes never do)."""
    path = out / f"boxkeeper-agent-{version}-linux-x86_64.tar.gz"
    if not path.is_file():
        proc = subprocess.run([sys.executable, "-m", "agent.bundle", "--out", str(out), "--version", version],
                              capture_output=True, text=True, timeout=1800, cwd=REPO, check=False)
        if proc.returncode != 0 or not path.is_file():
            raise EnrolmentError("controller", "bundle", (proc.stderr or proc.stdout).strip()[-500:]
                                 or f"python -m agent.bundle wrote no {path}")
    return Bundle(path, version)


def bundle_version(path: Path) -> str:
    """``boxkeeper-agent-0.1.0-linux-x86_64.tar.gz`` → ``0.1.0``."""
    name = path.name
    prefix, suffix = "boxkeeper-agent-", "-linux-x86_64.tar.gz"
    if not (name.startswith(prefix) and name.endswith(suffix)):
        raise EnrolmentError("controller", "bundle",
                             f"{path}: expected a file named boxkeeper-agent-VERSION-linux-x86_64.tar.gz "
                             "(python -m agent.bundle)")
    return name[len(prefix):-len(suffix)]


@dataclass
class Enrolment:
    """One host's enrolment: its config, executor, the database and the options."""

    cfg: ControllerConfig
    db: Database
    host: HostConfig
    client: str
    executor: Executor
    bundle: Bundle
    controller_url: str
    report_timeout: float = 60.0
    clock: Clock = time.time
    sleep: Callable[[float], None] = time.sleep
    on_step: Callable[[StepDone], None] | None = None
    done: list[StepDone] = field(default_factory=list)
    _step: str = "connect"

    # ------------------------------------------------------------------ helpers

    @property
    def root(self) -> str:
        return self.host.agent.root.rstrip("/")

    def path(self, box_path: str) -> str:
        return self.root + box_path

    def _installer(self, action: str) -> str:
        q = shlex.quote
        python = f" --python {q(self.host.agent.python)}" if self.host.agent.python else ""
        script = q(self.path(INSTALLED + "/install.sh"))
        return f"sh {script} --root {q(self.host.agent.root)}{python} {action}"

    def _agent(self) -> str:
        return shlex.quote(self.path(INSTALLED + "/venv/bin/boxkeeper-agent"))

    def run(self, text: str, timeout: float = 120.0, *, ok: tuple[int, ...] = (0,)) -> CommandResult:
        try:
            result = self.executor.run(Command(text, text), timeout)
        except ExecutorError as exc:
            raise EnrolmentError(self.host.name, self._step, self._said(exc)) from None
        if result.timed_out:
            raise EnrolmentError(self.host.name, self._step, f"timed out after {timeout:.0f}s: {text}")
        if result.exit_code not in ok:
            said = (result.stderr_tail or result.stdout_tail).strip()
            raise EnrolmentError(self.host.name, self._step, f"exit {result.exit_code}: {said}")
        return result

    def _said(self, exc: Exception) -> str:
        return str(exc).removeprefix(f"{self.host.name}: ")  # the executor's errors name the host too

    def note(self, changed: bool, detail: str) -> None:
        self.done.append(StepDone(self._step, changed, detail))
        if self.on_step is not None:
            self.on_step(self.done[-1])

    def step(self, name: str) -> None:
        self._step = name

    # ------------------------------------------------------------------ the steps

    def connect(self) -> None:
        self.step("connect")
        out = self.run("id -u; uname -m").stdout_tail.split()
        if out[:1] != ["0"]:
            raise EnrolmentError(self.host.name, "connect", "the SSH user is not root (the installer creates "
                                 "the user boxkeeper and /opt/boxkeeper): set ssh.user to root")
        if out[1:2] != ["x86_64"]:
            raise EnrolmentError(self.host.name, "connect", f"the host is {' '.join(out[1:2])}; the bundle "
                                 "is for x86_64 only")
        self.note(False, f"root on {self.host.ssh.address[0] if self.host.ssh else '?'} (x86_64)")

    def inventory(self) -> None:
        self.step("inventory")
        inventory.sync_config(self.cfg, self.db)
        self.note(False, f"host {self.host.name} of client {self.client}")

    def installed_version(self) -> str | None:
        result = self.run(f"if [ -x {shlex.quote(self.path(INSTALLED + '/install.sh'))} ]; then "
                          f"{self._installer('version')} 2>/dev/null || true; fi")
        return result.stdout_tail.strip() or None

    def install(self, before: str | None, *, upgrade: bool) -> bool:
        """Copy the bundle and run its installer, unless another version is installed and this is
        no ``upgrade``; whether it changed anything. With the bundle's version installed already,
        the installer only repairs what is missing (user, group membership, directories, service
        files) and says ``unchanged`` when nothing was."""
        self.step("install")
        if before is not None and before != self.bundle.version and not upgrade:
            self.note(False, f"boxkeeper-agent {before} installed (the controller's is "
                             f"{self.bundle.version}: --upgrade moves it)")
            return False
        tmp = self.run("mktemp -d /tmp/boxkeeper-enrol-XXXXXX").stdout_tail.strip()
        try:
            remote = f"{tmp}/{self.bundle.path.name}"
            try:
                self.executor.put(str(self.bundle.path), remote)
            except ExecutorError as exc:
                raise EnrolmentError(self.host.name, "install", f"copying the bundle: {self._said(exc)}") \
                    from None
            q = shlex.quote
            python = f" --python {q(self.host.agent.python)}" if self.host.agent.python else ""
            result = self.run(f"cd {q(tmp)} && tar xzf {q(self.bundle.path.name)} && "
                              f"sh {q(tmp + '/' + self.bundle.top + '/install.sh')} "
                              f"--root {q(self.host.agent.root)}{python} install", timeout=600)
        finally:
            with contextlib.suppress(EnrolmentError):
                self.run(f"rm -rf {shlex.quote(tmp)}")
        lines = result.stdout_tail.splitlines()
        installed = [line.removeprefix("installed: ") for line in lines if line.startswith("installed:")]
        repaired = [line for line in lines if line.startswith(("created ", "added ", "service: "))]
        if installed:
            self.note(True, installed[-1])
        elif repaired:
            self.note(True, f"boxkeeper-agent {self.bundle.version} installed; repaired: "
                            f"{'; '.join(repaired)}")
        else:
            self.note(False, f"boxkeeper-agent {self.bundle.version} installed")
        return bool(installed or repaired)

    def _pushes_to(self, config: str) -> tuple[str, str]:
        """The ``controller.url`` and ``controller.token_file`` of the host's agent config ('' if none)."""
        python = shlex.quote(self.path(INSTALLED + "/venv/bin/python"))
        probe = ("import sys, yaml; c = (yaml.safe_load(open(sys.argv[1])) or {}).get('controller') or {}; "
                 "print(c.get('url') or ''); print(c.get('token_file') or '')")
        out = self.run(f"{python} -c {shlex.quote(probe)} {shlex.quote(config)}").stdout_tail.split("\n")
        return (out[0].strip(), out[1].strip()) if len(out) > 1 else ("", "")

    def config(self) -> bool:
        """Write the agent config with discover unless one pushing to this controller is there."""
        self.step("config")
        q = shlex.quote
        config = self.path(CONFIG)
        exists = self.run(f"test -f {q(config)}", ok=(0, 1)).exit_code == 0
        replaced = ""
        if exists:
            url, token_file = self._pushes_to(config)
            if (url.rstrip("/"), token_file) != (self.controller_url, self.path(TOKEN)):
                # pushing elsewhere (another controller, none): rewritten; the one before kept beside it
                self.run(f"cp -p {q(config)} {q(config + '.before-enrol')}")
                replaced = (f" (it pushed to {url or 'no controller'}; the one before is "
                            f"{CONFIG}.before-enrol)")
        if not exists or replaced:
            a = self.host.agent
            args = [f"--root {q(a.root)}", f"--host {q(self.host.name)}",
                    f"--controller-url {q(self.controller_url)}", f"--token-file {q(TOKEN)}",
                    f"--write {q(config)}"]
            if replaced:
                args.append("--force")
            if self.root:
                args.append("--proc /proc --paths-under-root")
            if a.listen is not None:
                args.append(f"--listen {q(f'{a.listen[0]}:{a.listen[1]}')}")
            self.run(f"{self._agent()} discover {' '.join(args)} && chgrp boxkeeper {q(config)}")
        validated = self.run(f"setpriv --reuid=boxkeeper --regid=boxkeeper --init-groups -- {self._agent()} "
                             f"validate --config {q(config)}")
        written = not exists or bool(replaced)
        what = "written by discover" + replaced if written else "kept"
        self.note(written, f"{CONFIG} {what}: {validated.stdout_tail.strip()}")
        return written

    def token(self) -> bool:
        self.step("token")
        q = shlex.quote
        token_file = self.path(TOKEN)
        digest = self.run(f"if [ -s {q(token_file)} ]; then head -n 1 {q(token_file)} | tr -d '\\r\\n' | "
                          "sha256sum | cut -d ' ' -f 1; fi").stdout_tail.strip()
        if digest and inventory.has_active_token(self.db, self.host.name, digest):
            self.note(False, f"{TOKEN} holds an active token of {self.host.name}")
            return False
        token = inventory.issue_token(self.db, self.host.name, self.client, cfg=self.cfg)
        tmp = self.run("mktemp -d /tmp/boxkeeper-enrol-XXXXXX").stdout_tail.strip()
        fd, local = tempfile.mkstemp(prefix="boxkeeper-token-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            try:
                self.executor.put(local, f"{tmp}/agent.token")
            except ExecutorError as exc:
                raise EnrolmentError(self.host.name, "token", f"copying the token: {self._said(exc)}") \
                    from None
            self.run(f"install -m 0600 -o boxkeeper -g boxkeeper {q(tmp + '/agent.token')} {q(token_file)}")
        finally:
            os.unlink(local)
            with contextlib.suppress(EnrolmentError):
                self.run(f"rm -rf {q(tmp)}")
        self.note(True, f"new token issued (the host's earlier ones revoked), in {TOKEN} (0600, boxkeeper)")
        return True

    def service(self, *, restart: bool) -> None:
        self.step("service")
        running = self.run(self._installer("status"), ok=(0, 1, 3)).exit_code == 0
        if running and not restart:
            self.note(False, "running")
            return
        said = self.run(self._installer("restart" if running else "start"), timeout=180).stdout_tail.strip()
        self.note(True, said.splitlines()[-1] if said else ("restarted" if running else "started"))

    def wait_for_report(self, since: float, version: str, *, timeout: float | None = None) -> float:
        """Seconds until a report of agent ``version`` newer than ``since`` reached the controller."""
        self.step("report")
        limit = self.report_timeout if timeout is None else timeout
        deadline = self.clock() + limit
        while True:
            row = inventory.host_row(self.db, self.host.name)
            if row is not None and row.last_report_at is not None and row.last_report_at >= since \
                    and row.agent_version == version:
                took = row.last_report_at - since
                self.note(True, f"a report from agent {version}, {took:.1f}s after the start "
                                f"(seq {row.last_seq})")
                return took
            if self.clock() >= deadline:
                seen = "none" if row is None or row.last_report_at is None else (
                    f"the latest {self.clock() - row.last_report_at:.0f}s ago, "
                    f"from agent {row.agent_version}")
                raise EnrolmentError(self.host.name, "report", (
                    f"no report from agent {version} within {limit:.0f}s (reports seen: {seen}); is the "
                    f"controller at {self.controller_url} reachable from the host and `boxkeeper serve` "
                    f"running? See {self.path('/var/log/boxkeeper-agent.log')} or journalctl -u "
                    "boxkeeper-agent on the host"))
            self.sleep(0.5)

    def rollback(self, previous: str) -> None:
        self.step("rollback")
        self.run(self._installer("rollback"), timeout=180)
        self.run(f"{self._installer('status')} || {self._installer('start')}", timeout=180)
        self.note(True, f"back to boxkeeper-agent {previous}")


def enrol(e: Enrolment, *, upgrade: bool = False) -> list[StepDone]:
    """Enrol ``e.host`` (see the module's docstring); returns the steps as done."""
    started = e.clock()
    e.connect()
    e.inventory()
    before = e.installed_version()
    try:
        # install.sh restarts a running agent after replacing its version
        e.install(before, upgrade=upgrade)
        wrote_config = e.config()
        new_token = e.token()
        running = e.installed_version() or e.bundle.version
        e.service(restart=wrote_config or new_token)
        e.wait_for_report(started, running)
    except EnrolmentError as failed:
        if not (upgrade and before is not None and before != e.bundle.version):
            raise
        _roll_back(e, failed, before)
    return e.done


def _roll_back(e: Enrolment, failed: EnrolmentError, before: str) -> None:
    """An upgrade failed: when the version before is no longer the current one, put it back and
    see it report; raise the failure, saying so."""
    try:
        now = e.installed_version()
    except EnrolmentError:
        raise failed from None
    if now == before:
        raise failed
    since = e.clock()
    e.rollback(before)
    try:
        e.wait_for_report(since, before)
    except EnrolmentError as again:
        raise EnrolmentError(e.host.name, "rollback", f"{failed}; rolled back to boxkeeper-agent {before}, "
                             f"which does not report either: {again}") from None
    reason = str(failed).split(" failed: ", 1)[-1]
    raise EnrolmentError(e.host.name, failed.step, f"{reason}; rolled back to boxkeeper-agent {before}, "
                         "which reports again") from None


def uninstall(e: Enrolment) -> list[StepDone]:
    """Stop and remove the agent from the host (install.sh uninstall) and revoke its token."""
    e.connect()
    e.step("uninstall")
    present = e.run(f"test -x {shlex.quote(e.path(INSTALLED + '/install.sh'))}", ok=(0, 1)).exit_code == 0
    if present:
        said = e.run(e._installer("uninstall"), timeout=180).stdout_tail.strip()
        e.note(True, said.splitlines()[-1] if said else "uninstalled")
    else:
        e.note(False, f"no agent in {e.path(INSTALLED)}")
    e.step("token")
    with contextlib.suppress(ControllerError):
        revoked = inventory.revoke_host(e.db, e.host.name)
        e.note(bool(revoked), f"{revoked} token(s) revoked" if revoked else "no active token")
    return e.done
