"""SSHExecutor and host-key pinning against the real sshd of a test box."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from controller.workflows import hostkeys
from controller.workflows.errors import (
    ConnectError,
    ConnectionLostError,
    HostKeyMismatchError,
    UnknownHostKeyError,
)
from controller.workflows.executor import Command
from controller.workflows.ssh import SSHExecutor, SSHOptions, SSHTarget, parse_jump, remote_command
from tests.boxes import procs
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import executor, known_hosts_file


def cmd(text: str) -> Command:
    return Command(text, text)


def test_remote_command_shape() -> None:
    assert (
        remote_command("echo 'a b'", 9.2, 5)
        == "env LANG=C LC_ALL=C timeout -k 5 10 sh -c 'echo '\"'\"'a b'\"'\"'' </dev/null"
    )
    assert parse_jump("bastion.example:2200", "root") == ("root", "bastion.example", 2200)
    assert parse_jump("ops@bastion.example", "root") == ("ops", "bastion.example", 22)


@pytest.mark.integration
@pytest.mark.parametrize("persistent_shell", [True, False])
def test_commands_run_with_lang_c_and_report_exit_code_and_output(box: Box, tmp_path: Path,
                                                                  persistent_shell: bool) -> None:
    ex = executor(box, known_hosts_file(box, tmp_path), persistent_shell=persistent_shell)
    try:
        result = ex.run(cmd("echo LANG=$LANG LC_ALL=$LC_ALL; echo oops >&2; exit 3"), 10)
        assert result.exit_code == 3 and not result.timed_out
        assert result.stdout_tail == "LANG=C LC_ALL=C\n" and result.stderr_tail == "oops\n"
        assert ex.run(cmd("true"), 10).exit_code == 0  # the connection is reused
        assert ex.run(cmd("printf 'no newline'"), 10).stdout_tail == "no newline"
        assert ex.run(cmd("printf 'a\\n\\nb\\n\\n'"), 10).stdout_tail == "a\n\nb\n\n"
        assert ex.run(cmd("cat; echo stdin-is-empty"), 10).stdout_tail == "stdin-is-empty\n"
    finally:
        ex.close()


@pytest.mark.integration
@pytest.mark.parametrize("persistent_shell", [True, False])
def test_a_secret_is_in_the_commands_environment_never_in_the_process_table(
        box: Box, tmp_path: Path, persistent_shell: bool) -> None:
    secret = "Pr0cess-Table-S3cret"
    ex = executor(box, known_hosts_file(box, tmp_path), persistent_shell=persistent_shell)
    seen: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what any local user of the box sees with `ps`
        while not stop.is_set():
            seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        text = 'P="$BOXKEEPER_SECRET_pw" sh -c \'sleep 1.5; printf %s "$P"\''
        result = ex.run(Command(text, text, {"BOXKEEPER_SECRET_pw": secret}), 10)
    finally:
        stop.set()
        watcher.join()
        ex.close()
    assert (result.exit_code, result.stdout_tail) == (0, secret)
    assert len(seen) > 5 and any("sleep 1.5" in table for table in seen)  # it was watched while running
    assert not any(secret in table for table in seen)


@pytest.mark.integration
@pytest.mark.parametrize("persistent_shell", [True, False])
def test_timeout_kills_the_remote_command(box: Box, tmp_path: Path, persistent_shell: bool) -> None:
    ex = executor(box, known_hosts_file(box, tmp_path), persistent_shell=persistent_shell)
    try:
        result = ex.run(cmd("echo started; sleep 37 | cat; echo never"), 2)
        assert result.timed_out and result.exit_code == 124 and "never" not in result.stdout_tail
        assert "started" in result.stdout_tail
        assert procs.wait_until(lambda: not sleeping(box), 15)  # the whole pipeline was killed
    finally:
        ex.close()


def sleeping(box: Box) -> bool:
    found = subprocess.run(["pgrep", "-f", "sleep 37"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


@pytest.mark.integration
def test_unknown_and_changed_host_keys_are_refused(box: Box, tmp_path: Path) -> None:
    with pytest.raises(UnknownHostKeyError, match="boxkeeper hosts trust"):
        executor(box, tmp_path / "none").run(cmd("true"), 5)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    kind, blob = (tmp_path / "k.pub").read_text().split()[:2]
    wrong = tmp_path / "wrong"
    wrong.write_text(f"[{box.info.address}]:{box.info.ssh_port} {kind} {blob}\n")
    with pytest.raises(HostKeyMismatchError, match="differs from the pinned key"):
        executor(box, wrong).run(cmd("true"), 5)


@pytest.mark.integration
def test_fetch_and_pin_the_host_key(box: Box, tmp_path: Path) -> None:
    key = hostkeys.fetch_host_key(box.info.address, box.info.ssh_port)
    assert hostkeys.fingerprint(key) == box.info.host_key_fingerprint
    known = tmp_path / "state" / "known_hosts"
    hostkeys.pin(known, box.info.address, box.info.ssh_port, key)
    assert known.stat().st_mode & 0o777 == 0o600
    assert [k.asbytes() for k in hostkeys.pinned_keys(known, box.info.address, box.info.ssh_port)] == [
        key.asbytes()
    ]
    assert executor(box, known).run(cmd("true"), 5).exit_code == 0  # the pinned key is accepted


@pytest.mark.integration
def test_reconnects_after_sshd_restart_within_the_deadline(box: Box, tmp_path: Path) -> None:
    ex = executor(box, known_hosts_file(box, tmp_path), reconnect_deadline=30.0, reconnect_interval=0.5)
    try:
        assert ex.run(cmd("true"), 10).exit_code == 0
        box.stop_service("sshd", sessions_too=True)
        restarter = threading.Timer(2.0, box.start_service, args=("sshd",))
        restarter.start()
        errors = 0
        for _ in range(2):  # the dropped session may surface once as "connection lost" (outcome unknown)
            try:
                assert ex.run(cmd("echo back"), 10).stdout_tail == "back\n"
                break
            except ConnectionLostError:
                errors += 1
        else:
            pytest.fail("no reconnect")
        assert errors <= 1
        restarter.join()
    finally:
        ex.close()


@pytest.mark.integration
def test_gives_up_when_the_host_stays_down(box: Box, tmp_path: Path) -> None:
    ex = executor(box, known_hosts_file(box, tmp_path), reconnect_deadline=2.0, reconnect_interval=0.5)
    try:
        assert ex.run(cmd("true"), 10).exit_code == 0
        box.stop_service("sshd", sessions_too=True)
        started = time.monotonic()
        with pytest.raises((ConnectError, ConnectionLostError)):
            ex.run(cmd("true"), 5)
            ex.run(cmd("true"), 5)
        assert time.monotonic() - started >= 0  # returned (bounded by the deadline) instead of hanging
    finally:
        ex.close()


@pytest.mark.integration
def test_killed_sshd_mid_command_is_a_lost_connection(box: Box, tmp_path: Path) -> None:
    ex = executor(box, known_hosts_file(box, tmp_path), reconnect_deadline=1.0, reconnect_interval=0.5)
    killer = threading.Timer(1.5, box.kill_sshd)
    assert ex.run(cmd("true"), 10).exit_code == 0
    killer.start()
    try:
        with pytest.raises(ConnectionLostError):
            ex.run(cmd("sleep 20"), 30)
    finally:
        killer.join()
        ex.close()


@pytest.mark.integration
def test_jump_host(boxes: object, tmp_path: Path) -> None:
    target_box, jump_box = boxes(2)  # type: ignore[operator]
    known = tmp_path / "known_hosts"
    known.write_text(target_box.info.known_hosts.strip() + "\n" + jump_box.info.known_hosts.strip() + "\n")
    target = SSHTarget(
        target_box.name,
        target_box.info.address,
        target_box.info.ssh_port,
        "root",
        target_box.info.ssh_key,
        jump=f"root@{jump_box.info.address}:{jump_box.info.ssh_port}",
        known_hosts=str(known),
    )
    # one key for both hops (the config has one key_file per host): let the target's key into the jump box
    authorized = jump_box.layout.root / "etc/ssh/authorized_keys"
    if not authorized.exists():
        authorized = next(jump_box.layout.root.rglob("authorized_keys"))
    public = Path(target_box.info.ssh_key + ".pub").read_text()
    if public not in authorized.read_text():
        with authorized.open("a") as f:
            f.write(public)
    assert executor(target_box, known).run(cmd("true"), 10).exit_code == 0  # reachable directly
    ex = SSHExecutor(target, SSHOptions())
    try:
        assert ex.run(cmd("echo $SSH_CONNECTION"), 10).exit_code == 0
    finally:
        ex.close()
    # `hosts trust` of a host behind the jump: its key is fetched through a tunnel of the jump box
    jump = SSHExecutor(SSHTarget("jump", jump_box.info.address, jump_box.info.ssh_port, "root",
                                 target_box.info.ssh_key, known_hosts=str(known)))
    try:
        channel = jump.open_tunnel(target_box.info.address, target_box.info.ssh_port)
        key = hostkeys.fetch_host_key(target_box.info.address, target_box.info.ssh_port, sock=channel)
        assert hostkeys.fingerprint(key) == target_box.info.host_key_fingerprint
    finally:
        jump.close()
    # The hop really goes through the jump box, and its key is pinned too.
    known.write_text(target_box.info.known_hosts.strip() + "\n")
    with pytest.raises(UnknownHostKeyError, match=f"{jump_box.info.address}|{jump_box.info.ssh_port}"):
        SSHExecutor(target, SSHOptions()).run(cmd("true"), 10)


@pytest.mark.integration
def test_testinfra_step_uses_the_pinned_ssh_settings(box: Box, tmp_path: Path) -> None:
    from controller.redact import Redactor
    from controller.workflows.steps.base import Step, StepContext, run_step
    from controller.workflows.steps.testinfra import TestinfraAction

    module = tmp_path / "test_box.py"
    module.write_text("def test_docroot(host):\n"
                      f"    assert host.file({box.info.docroot!r} + '/bitrix/.settings.php').exists\n"
                      "def test_no_such_file(host):\n"
                      "    assert host.file('/nonexistent-boxkeeper').exists\n")
    ex = executor(box, known_hosts_file(box, tmp_path))
    ctx = StepContext(box.name, ex, {}, Redactor(), None)
    outcome = run_step(Step("checks", TestinfraAction(module=module), 120), ctx)
    assert not outcome.ok and "1 failed, 1 passed" in outcome.stdout
    module.write_text(module.read_text().split("def test_no_such_file")[0])
    assert run_step(Step("checks", TestinfraAction(module=module), 120), ctx).ok
    # with an unknown host key, testinfra (OpenSSH, StrictHostKeyChecking yes) is refused too
    strict = executor(box, tmp_path / "empty_known_hosts")
    (tmp_path / "empty_known_hosts").write_text("")
    refused = run_step(Step("checks", TestinfraAction(module=module), 120),
                       StepContext(box.name, strict, {}, Redactor(), None))
    assert not refused.ok and "Host key verification failed" in refused.stdout + refused.stderr
