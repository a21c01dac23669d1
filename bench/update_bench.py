"""End-to-end wall time of a `good` Bitrix module update on a test box, three ways, same commands:

  boxkeeper   the engine running playbooks/bitrix-modules-update.yaml (state persisted in SQLite
              before/after every step, one SSH connection, a channel per command, HTTP checks from
              the controller)
  shell       the floor: the very commands boxkeeper sent (recorded from a boxkeeper run), as one
              shell script over one SSH session (curl for the HTTP checks), no state, no checks
              beyond `|| exit`
  ansible     the same commands as an ansible-core playbook (shell + uri tasks, OpenSSH with the
              pinned known_hosts, pipelining on)

Plus the time to recover from `broken-fatal`: from the end of the failed verify step to the rollback
verified (ROLLED_BACK), from boxkeeper's own timeline; and the restore drill
(playbooks/bitrix-backup-drill.yaml) of the test portal's newest backup pair, end to end.

    .venv/bin/python bench/update_bench.py [--repeat 3] [--out bench/results/update.md]

Runs as root (the test boxes of tests/boxes); everything it starts is stopped at the end. The
testinfra preflight step is left out of every variant (it is a separate pytest process, not a
shell command; its cost is reported on its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.store.db import Database  # noqa: E402
from controller.workflows.engine import Engine  # noqa: E402
from controller.workflows.executor import Command, CommandResult  # noqa: E402
from controller.workflows.loader import load_playbook  # noqa: E402
from controller.workflows.playbook import Phase, Playbook  # noqa: E402
from controller.workflows.ssh import SSHExecutor, SSHOptions, SSHTarget, remote_command  # noqa: E402
from tests.boxes.box import Box  # noqa: E402
from tests.boxes.fleet import ensure_state_dir  # noqa: E402
from tests.boxes.pytest_plugin import BoxPool  # noqa: E402
from tests.controller.workflows.boxkit import bitrix_vars  # noqa: E402
from tests.controller.workflows.conftest import RecordingIncidents  # noqa: E402
from tests.controller.workflows.drillkit import DRILL, drill_vars, make_pair  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "bitrix-modules-update.yaml"


class Recorder:
    """Wraps an executor and keeps the exact command texts (for the shell and ansible variants)."""

    def __init__(self, inner: SSHExecutor) -> None:
        self.inner, self.host, self.commands = inner, inner.host, list[str]()
        self.env: dict[str, str] = {}  # secret values the commands refer to as "$BOXKEEPER_SECRET_…"

    def run(self, command: Command, timeout: float) -> CommandResult:
        self.commands.append(command.text)
        self.env.update(command.env)
        return self.inner.run(command, timeout)

    def testinfra_args(self, workdir: Path) -> list[str]:
        return self.inner.testinfra_args(workdir)

    def put(self, local: str, remote: str) -> None:
        self.inner.put(local, remote)

    def get(self, remote: str, local: str) -> None:
        self.inner.get(remote, local)

    def close(self) -> None:
        self.inner.close()


def without_testinfra(tmp: Path) -> Playbook:
    text = PLAYBOOK.read_text()
    start = text.index("    - name: tools the playbook needs are installed (testinfra)")
    end = text.index("    - name: backup dir exists")
    path = tmp / "bench-playbook.yaml"
    path.write_text(text[:start] + text[end:])
    (tmp / "checks").mkdir(exist_ok=True)
    return load_playbook(path)


def prepare(box: Box, release: str) -> None:
    box.reset()
    # The replayed variants carry the values boxkeeper captured in its recorded run (e.g. the PHP
    # fatal count): start every run from the same logs, so a previous broken-fatal run does not count.
    (box.layout.logs / "php-errors.log").write_text("")
    box.stage(release)


def executor(box: Box, known_hosts: Path) -> SSHExecutor:
    i = box.info
    target = SSHTarget(box.name, i.address, i.ssh_port, i.ssh_user, i.ssh_key, known_hosts=str(known_hosts))
    return SSHExecutor(target,
                       SSHOptions())


def run_boxkeeper(box: Box, pb: Playbook, known: Path, tmp: Path,
                  release: str = "good") -> tuple[float, Any, list[str], dict[str, str]]:
    prepare(box, release)
    db = Database(f"sqlite:///{tmp}/bench-{time.monotonic_ns()}.db")
    db.upgrade()
    ex = Recorder(executor(box, known))
    started = time.monotonic()
    result = Engine(db.session, incidents=RecordingIncidents()).run(pb, box.name, ex, bitrix_vars(box))
    took = time.monotonic() - started
    ex.close()
    db.engine.dispose()
    return took, result, ex.commands, ex.env


def http_urls(box: Box, pb: Playbook) -> list[str]:
    """The HTTP checks of a good run: the preflight's, then the verify's (after the update)."""
    return [render_url(box, s.action.url) for phase in (Phase.PREFLIGHT, Phase.VERIFY)  # type: ignore[union-attr]
            for s in pb.steps(phase) if type(s.action).__name__ == "HttpAction"
            and (phase is Phase.PREFLIGHT or "update" in s.after)]


def shell_script(box: Box, commands: list[str], env: dict[str, str], pb: Playbook) -> str:
    """The recorded commands, each under the same LANG=C + timeout wrapper; stop at the first failure.
    Secrets are exported from the script (it goes in on stdin, as boxkeeper's go over the channel)."""
    lines = ["set -u"] + [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    http = http_urls(box, pb)
    lines.append(f"curl -fsS -o /dev/null {shlex.quote(http[0])} || exit 1")  # the preflight portal check
    for i, command in enumerate(commands):
        wrapped = remote_command(command, 600, 5)
        lines.append(f"{wrapped} >/tmp/.bk-bench-out 2>&1 || {{ echo failed at {i}; cat /tmp/.bk-bench-out; "
                     "exit 1; }")
    lines += [f"curl -fsS -o /dev/null {shlex.quote(u)} || exit 1" for u in http[1:]]  # verify checks
    lines.append("echo ALL_OK")
    return "\n".join(lines) + "\n"


def render_url(box: Box, template: str) -> str:
    return template.replace("{{ portal_url }}", box.info.portal_url)


def run_shell(box: Box, script: str, known: Path) -> float:
    prepare(box, "good")
    i = box.info
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known}",
            "-i", i.ssh_key, "-p", str(i.ssh_port), f"{i.ssh_user}@{i.address}", "sh -s"]
    started = time.monotonic()
    out = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=900, check=False)
    took = time.monotonic() - started
    if "ALL_OK" not in out.stdout:
        raise RuntimeError(f"shell variant failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    return took


def ansible_playbook(box: Box, commands: list[str], env: dict[str, str], pb: Playbook, tmp: Path,
                     known: Path) -> tuple[Path, Path]:
    tasks: list[dict[str, Any]] = []
    for n, command in enumerate(commands):
        tasks.append({"name": f"step {n}", "ansible.builtin.shell": command,
                      "environment": {"LANG": "C", "LC_ALL": "C", **env}, "timeout": 600})
    for phase in (Phase.PREFLIGHT, Phase.VERIFY):
        for s in pb.steps(phase):
            if type(s.action).__name__ == "HttpAction" and (phase is Phase.PREFLIGHT or "update" in s.after):
                tasks.append({"name": s.name, "ansible.builtin.uri": {"url": render_url(box, s.action.url),  # type: ignore[union-attr]
                                                                       "status_code": 200},
                              "delegate_to": "localhost"})
    play = [{"hosts": "box", "gather_facts": False, "tasks": tasks}]
    path = tmp / "ansible-play.json"  # JSON is YAML
    path.write_text(json.dumps(play))
    i = box.info
    inventory = tmp / "inventory.ini"
    inventory.write_text(
        f"box ansible_host={i.address} ansible_port={i.ssh_port} ansible_user={i.ssh_user} "
        f"ansible_ssh_private_key_file={i.ssh_key} ansible_python_interpreter=/usr/bin/python3 "
        f"ansible_ssh_common_args='-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known}'\n"
        "localhost ansible_connection=local ansible_python_interpreter=" + sys.executable + "\n")
    return path, inventory


def run_ansible(box: Box, play: Path, inventory: Path) -> float:
    prepare(box, "good")
    env = {**os.environ, "ANSIBLE_PIPELINING": "1", "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(play.parent / "ansible-tmp"),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(play.parent / "cp")}
    ansible = Path(sys.executable).with_name("ansible-playbook")
    started = time.monotonic()
    out = subprocess.run([str(ansible), "-i", str(inventory), str(play)], capture_output=True, text=True,
                         env=env,
                         timeout=900, check=False)
    took = time.monotonic() - started
    if out.returncode != 0:
        raise RuntimeError(f"ansible variant failed: {out.stdout[-1500:]} {out.stderr[-500:]}")
    return took


def run_drill(box: Box, known: Path, tmp: Path) -> tuple[float, Any]:
    """The drill of a fresh pair (made with bitrix-modules-update's backup commands) on a pristine box."""
    box.reset()
    make_pair(box, 1)
    db = Database(f"sqlite:///{tmp}/bench-drill-{time.monotonic_ns()}.db")
    db.upgrade()
    ex = executor(box, known)
    started = time.monotonic()
    result = Engine(db.session, incidents=RecordingIncidents()).run(load_playbook(DRILL), box.name, ex,
                                                                    drill_vars(box))
    took = time.monotonic() - started
    ex.close()
    db.engine.dispose()
    return took, result


def recovery_seconds(result: Any) -> float:
    timeline = result.timeline
    failed = next(e for e in timeline if e.phase == "verify" and e.status == "failed")
    end = next(e for e in timeline if e.kind == "transition" and e.phase == "ROLLED_BACK")
    return float(end.started_at - (failed.started_at + (failed.duration or 0)))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None,
                        help="also write the results to this file (bench/results/ is hand-kept history)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    pool = BoxPool(ensure_state_dir(Path(tempfile.mkdtemp(prefix="bxb-", dir="/tmp")), with_1c=False))
    try:
        (box,) = pool.acquire(1)
        known = tmp / "known_hosts"
        known.write_text(box.info.known_hosts.strip() + "\n")
        pb = without_testinfra(tmp)
        times: dict[str, list[float]] = {"boxkeeper": [], "shell": [], "ansible": []}
        recover: list[float] = []
        drills: list[float] = []
        _took, first, commands, env = run_boxkeeper(box, pb, known, tmp)  # warm-up; the commands to replay
        assert first.state == "SUCCEEDED", first.error
        script = shell_script(box, commands, env, pb)
        play, inventory = ansible_playbook(box, commands, env, pb, tmp, known)
        for _ in range(args.repeat):  # interleaved, so load changes hit every variant alike
            took, result, _c, _e = run_boxkeeper(box, pb, known, tmp)
            assert result.state == "SUCCEEDED", result.error
            times["boxkeeper"].append(took)
            times["shell"].append(run_shell(box, script, known))
            times["ansible"].append(run_ansible(box, play, inventory))
            _t, broken, _c, _e = run_boxkeeper(box, pb, known, tmp, release="broken-fatal")
            assert broken.state == "ROLLED_BACK"
            recover.append(recovery_seconds(broken))
            drill_took, drill = run_drill(box, known, tmp)
            assert drill.state == "SUCCEEDED", drill.error
            drills.append(drill_took)
        full_pb = load_playbook(PLAYBOOK)
        prepare(box, "good")
        full_took, full, _c, _e = run_boxkeeper(box, full_pb, known, tmp)
        assert full.state == "SUCCEEDED", full.error
        testinfra = next(e.duration for e in full.timeline if "testinfra" in e.name)
        report(args.out, times, recover, len(commands), len(http_urls(box, pb)), full_took, testinfra or 0.0,
               args.repeat, drills, drill.captured["restored"])
    finally:
        for socket_path in (tmp / "cp").glob("*"):  # ansible's ControlPersist masters: stop them now
            subprocess.run(["ssh", "-S", str(socket_path), "-O", "exit", "box"], capture_output=True,
                           check=False)
        pool.close()
    return 0


def report(out: str | None, times: dict[str, list[float]], recover: list[float], commands: int, checks: int,
           full: float, testinfra: float, repeat: int, drills: list[float], restored: str) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    load = os.getloadavg()
    lines = [
        "# Update workflow benchmark",
        "",
        f"Command: `.venv/bin/python bench/update_bench.py --repeat {repeat}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (other sessions were running their tests at the same time)",
        "",
        f"A `good` release on one test box (test-box harness: sshd, nginx, PHP-FPM, MariaDB on 127.0.0.x); "
        f"{commands} remote commands plus {checks} HTTP checks; box reset to pristine before every run; "
        f"median of {repeat} interleaved runs (all values in seconds).",
        "",
        "| variant | median | runs | vs shell |",
        "|---|---|---|---|",
    ]
    for name in ("shell", "boxkeeper", "ansible"):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        lines.append(f"| {name} | {med[name]:.2f} | {runs} | {med[name] / med['shell']:.2f}x |")
    lines += [
        "",
        f"- boxkeeper / shell floor = **{med['boxkeeper'] / med['shell']:.2f}x** (target <= 1.25x); "
        f"ansible-core / shell = {med['ansible'] / med['shell']:.2f}x.",
        f"- With the testinfra preflight step (a separate pytest process + 1 SSH connection) the full "
        f"shipped playbook took {full:.2f} s, of which testinfra {testinfra:.2f} s.",
        f"- Recovery from `broken-fatal` (end of the failed verify step → rollback verified, ROLLED_BACK): "
        f"median {statistics.median(recover):.2f} s (runs: {', '.join(f'{r:.2f}' for r in recover)}).",
        f"- Restore drill of the test portal's newest pair (bitrix-backup-drill: load the dump into a "
        f"scratch database, unpack the files, count and compare, drop the scratch copies; {restored}): "
        f"median {statistics.median(drills):.2f} s (runs: {', '.join(f'{d:.2f}' for d in drills)}).",
        "",
        "Variants: *boxkeeper* = the engine with the shipped playbook minus its testinfra step, state in",
        "SQLite (written before and after every step), one SSH connection and one remote shell for all",
        "commands (controller/workflows/remote_shell.py), HTTP checks from the controller with retries;",
        "*shell* = the exact command texts boxkeeper sent (recorded), each under the same",
        "`env LANG=C timeout` wrapper, in one `sh -s` over one SSH session, curl for the HTTP checks;",
        "*ansible* = the same commands as `ansible.builtin.shell` tasks + `uri` tasks, ansible-core over",
        "OpenSSH (pipelining, ControlPersist, strict host keys).",
        "",
    ]
    if out:
        Path(out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
