"""A box's sshd: key login with a strict known_hosts works, anything else is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import paramiko
import pytest

from tests.boxes import Box
from tests.boxes.remote import connect, known_hosts_file, run_on

pytestmark = pytest.mark.integration


def _ssh_cli(box: Box, known_hosts: Path, command: str) -> subprocess.CompletedProcess[str]:
    info = box.info
    return subprocess.run(
        [
            "ssh",
            "-i",
            info.ssh_key,
            "-p",
            str(info.ssh_port),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
            f"{info.ssh_user}@{info.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_key_login_with_strict_known_hosts(box: Box, tmp_path: Path) -> None:
    known = known_hosts_file(box.info, tmp_path)
    assert box.info.known_hosts.startswith(f"[{box.info.address}]:{box.info.ssh_port} ssh-ed25519 ")
    client = connect(box.info, known)
    try:
        result = run_on(
            client, 'echo "$BOX_ROOT"; test -f "$BOX_ROOT/home/bitrix/www/bitrix/.settings.php" && echo ok'
        )
    finally:
        client.close()
    assert result.exit_code == 0
    assert result.stdout.split() == [str(Path(box.info.docroot).parents[2]), "ok"]
    cli = _ssh_cli(
        box, known, "cat $BOX_ROOT/home/bitrix/www/bitrix/modules/main/classes/general/version.php"
    )
    assert cli.returncode == 0, cli.stderr
    assert 'define("SM_VERSION","25.100.200")' in cli.stdout


def test_fingerprint_matches_the_host_key(box: Box, tmp_path: Path) -> None:
    client = connect(box.info)
    try:
        key = client.get_transport().get_remote_server_key()  # type: ignore[union-attr]
    finally:
        client.close()
    assert key.fingerprint == box.info.host_key_fingerprint


def test_wrong_host_key_is_refused(box: Box, tmp_path: Path) -> None:
    other = paramiko.Ed25519Key.from_private_key_file(box.info.ssh_key)  # some other ed25519 key
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{box.info.address}]:{box.info.ssh_port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(box.info, wrong)
    cli = _ssh_cli(box, wrong, "true")
    assert cli.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in cli.stderr


def test_unknown_host_is_refused(box: Box, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(box.info, empty)
    cli = _ssh_cli(box, empty, "true")
    assert cli.returncode == 255
    assert "Host key verification failed" in cli.stderr


def test_password_login_is_refused(box: Box, tmp_path: Path) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts_file(box.info, tmp_path)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(
            box.info.address,
            port=box.info.ssh_port,
            username="root",
            password="root",
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()


def test_shell_looks_like_a_bitrix_box(box: Box) -> None:
    """mysql reaches the portal DB like bitrix-env's /root/.my.cnf; systemctl knows the units."""
    client = connect(box.info)
    try:
        db = run_on(client, "mysql -N -e \"SELECT VALUE FROM b_option WHERE NAME='site_name'\" portal")
        unit = run_on(
            client, "systemctl is-active httpd; systemctl is-active mysqld; systemctl status nosuch"
        )
    finally:
        client.close()
    assert (db.exit_code, db.stdout.strip()) == (0, "Test portal")
    assert unit.stdout.split() == ["active", "active"]
    assert unit.exit_code == 5
