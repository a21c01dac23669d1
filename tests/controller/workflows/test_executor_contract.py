"""One contract for every executor: each registered kind (executors.py, against a real test box) and
the unit tests' FakeExecutor are held to the same expectations. When the real one does something
the fake does not model, the fake is changed (fakes.py), never the expectation.

``script`` says what the host does with a command: the real executors ignore it (their shell does
it), the fake answers with it. What the contract checks is what the executor makes of it: the exit
code and output tails passed through, the one "timed out" rule of executor.py, LANG=C, file
transfer, and a dropped connection surfacing as ConnectionLostError.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psutil
import pytest

from controller.workflows.errors import ConnectionLostError, TransferError
from controller.workflows.executor import Command, Executor
from controller.workflows.executors import EXECUTORS, executor_kind
from controller.workflows.ssh import SSHOptions, SSHTarget
from tests.boxes import procs
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import known_hosts_file
from tests.controller.workflows.fakes import FakeExecutor, Response, Sleeps

GRACE = 1.0  # kill grace of every executor under test


@dataclass
class Target:
    executor: Executor
    script: Callable[[str, Response], None]  # what the host does with a command (fake only)
    drop_connection_during_next_command: Callable[[], None]
    scratch: str  # a directory on the host for put/get
    cleanup: Callable[[], None] = lambda: None


def fake_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    fake = FakeExecutor(kill_grace=GRACE)

    def script(command: str, response: Response) -> None:
        fake.on(f"^{_escape(command)}$", response)

    return Target(fake, script, fake.drop_connection, "/scratch")


def ssh_target(request: pytest.FixtureRequest, tmp_path: Path, *, persistent_shell: bool) -> Target:
    box: Box = request.getfixturevalue("box")
    info = box.info
    target = SSHTarget(box.name, info.address, info.ssh_port, info.ssh_user, info.ssh_key,
                       known_hosts=str(known_hosts_file(box, tmp_path)))
    options = SSHOptions(kill_grace=GRACE, reconnect_deadline=10.0, reconnect_interval=0.5,
                         persistent_shell=persistent_shell)
    executor = executor_kind("ssh").build(target, options)
    timers: list[threading.Timer] = []

    def drop_sessions() -> None:
        """Kill the listener's per-connection sshd processes (the listener lives on)."""
        listener = procs.read_pid(box.layout.pid_file("sshd"))
        assert listener is not None
        for child in psutil.Process(listener).children(recursive=True):
            if "sshd" in child.name():
                child.kill()

    def drop_later() -> None:
        timer = threading.Timer(1.0, drop_sessions)
        timers.append(timer)
        timer.start()

    def cleanup() -> None:
        for timer in timers:
            timer.join()
        executor.close()

    return Target(executor, lambda command, response: None, drop_later, str(box.layout.run), cleanup)


#: How to reach a real host for each registered executor kind (a kind missing here fails the test).
REAL: dict[str, list[tuple[str, Callable[[pytest.FixtureRequest, Path], Target]]]] = {
    "ssh": [("ssh", partial(ssh_target, persistent_shell=True)),
            ("ssh-sessions", partial(ssh_target, persistent_shell=False))],
}


def _missing(name: str) -> Callable[[pytest.FixtureRequest, Path], Target]:
    def fail(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
        pytest.fail(f"executor kind {name!r} has no target in test_executor_contract.REAL")
    return fail


PARAMS = [pytest.param(fake_target, id="fake")] + [
    pytest.param(make, id=label, marks=pytest.mark.integration)
    for kind in EXECUTORS
    for label, make in REAL.get(kind.name, [(kind.name, _missing(kind.name))])
]


@pytest.fixture(params=PARAMS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    made: Target = request.param(request, tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


def _escape(text: str) -> str:
    return "".join("\\" + c if not c.isalnum() and c != " " else c for c in text)


def cmd(text: str, shown: str | None = None) -> Command:
    return Command(text, text if shown is None else shown)


# ---------------------------------------------------------------------------------------------


def test_exit_code_and_output_tails_come_back(target: Target) -> None:
    text = "echo out; echo err >&2; exit 3"
    target.script(text, (3, "out\n", "err\n"))
    result = target.executor.run(cmd(text, "echo *** (redacted)"), 10)
    assert (result.exit_code, result.stdout_tail, result.stderr_tail) == (3, "out\n", "err\n")
    assert not result.timed_out and 0 <= result.duration < 10
    assert result.command_redacted == "echo *** (redacted)"  # never the text as sent


def test_commands_run_with_lang_c(target: Target) -> None:
    result = target.executor.run(cmd("printenv LANG LC_ALL"), 10)
    assert (result.exit_code, result.stdout_tail) == (0, "C\nC\n")


def test_a_commands_secret_environment_reaches_it(target: Target) -> None:
    secret = "pw with 'quotes' $HOME; and spaces"
    text = ('printenv BOXKEEPER_SECRET_x; P="$BOXKEEPER_SECRET_x"; '
            '[ "$P" = "$BOXKEEPER_SECRET_x" ] && echo same')
    target.script(text, (0, secret + "\nsame\n", ""))
    result = target.executor.run(Command(text, text, {"BOXKEEPER_SECRET_x": secret}), 10)
    assert (result.exit_code, result.stdout_tail) == (0, secret + "\nsame\n")
    # only for the command that was given it
    assert target.executor.run(cmd("printenv BOXKEEPER_SECRET_x"), 10).exit_code == 1


def test_a_command_over_its_timeout_is_timed_out(target: Target) -> None:
    target.script("sleep 30", Sleeps(30))
    result = target.executor.run(cmd("sleep 30"), 1)
    assert result.timed_out and result.exit_code == 124
    assert 1 <= result.duration < 10


def test_a_command_that_ignores_term_is_killed_after_the_grace(target: Target) -> None:
    text = "trap '' TERM; sleep 30"
    target.script(text, Sleeps(30, ignores_term=True))
    result = target.executor.run(cmd(text), 1)
    assert result.timed_out and result.exit_code == 137
    assert 1 + GRACE <= result.duration < 10


@pytest.mark.parametrize("text", ["exit 124", "exit 137", "kill -9 $$"])
def test_a_quick_124_or_137_of_the_command_itself_is_not_a_timeout(target: Target, text: str) -> None:
    code = 137 if text.startswith("kill") else int(text.split()[1])  # kill -9: as the OOM killer does
    target.script(text, (code, "", ""))
    result = target.executor.run(cmd(text), 10)
    assert result.exit_code == code and not result.timed_out


def test_put_and_get_round_trip_a_file(target: Target, tmp_path: Path) -> None:
    payload = b"payload \xff\x00 line\n" * 1000
    (tmp_path / "in.bin").write_bytes(payload)
    remote = f"{target.scratch}/boxkeeper-contract-{tmp_path.name}.bin"
    target.executor.put(str(tmp_path / "in.bin"), remote)
    target.executor.get(remote, str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == payload


def test_get_of_a_missing_file_is_a_transfer_error(target: Target, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="no-such-file"):
        target.executor.get(f"{target.scratch}/no-such-file", str(tmp_path / "out"))


def test_a_dropped_connection_is_connection_lost_then_reconnects(target: Target) -> None:
    assert target.executor.run(cmd("true"), 10).exit_code == 0
    target.script("sleep 5", Sleeps(5))
    target.drop_connection_during_next_command()
    with pytest.raises(ConnectionLostError):
        target.executor.run(cmd("sleep 5"), 10)
    target.script("echo back", (0, "back\n", ""))
    assert target.executor.run(cmd("echo back"), 10).stdout_tail == "back\n"
