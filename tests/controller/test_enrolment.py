"""``boxkeeper hosts enroll`` before it reaches a host: which hosts, the bundle's name, config errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.enrolment import EnrolmentError, bundle_version


def _cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli", "--config", str(config), *argv],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "controller.yaml"
    path.write_text(f"state_dir: {tmp_path}/state\nclients:\n  - name: acme\n    hosts:\n"
                    "      - {name: web1, ssh: {address: '127.0.0.9:22'}}\n      - {name: nossh}\n")
    return path


def test_the_bundle_version_comes_from_its_name() -> None:
    assert bundle_version(Path("/x/boxkeeper-agent-0.1.1-linux-x86_64.tar.gz")) == "0.1.1"
    with pytest.raises(EnrolmentError, match="expected a file named boxkeeper-agent-VERSION-linux-x86_64"):
        bundle_version(Path("agent.tgz"))


def test_a_host_not_in_the_config_is_a_config_error(config: Path) -> None:
    proc = _cli(config, "hosts", "enroll", "ghost", "--bundle", "/nonexistent")
    assert proc.returncode == 2
    assert "clients[].hosts[name=ghost]: expected the host in the controller config" in proc.stderr


def test_a_host_without_ssh_is_named_before_anything_starts(config: Path) -> None:
    proc = _cli(config, "hosts", "enroll", "--client", "acme")
    assert proc.returncode == 2
    assert "clients[].hosts[name=nossh].ssh.address: expected an SSH address" in proc.stderr


def test_no_host_and_no_client_is_a_usage_error(config: Path) -> None:
    proc = _cli(config, "hosts", "enroll")
    assert proc.returncode == 2 and "name hosts, or --client NAME" in proc.stderr


def test_a_missing_bundle_file_names_the_step(config: Path) -> None:
    proc = _cli(config, "hosts", "enroll", "web1", "--bundle", "/nonexistent/b.tar.gz",
                "--controller-url", "http://127.0.0.1:8470")
    assert proc.returncode == 1
    assert "controller: step bundle failed: /nonexistent/b.tar.gz: no such file" in proc.stderr


def test_a_bad_agent_listen_address_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clients:\n  - name: acme\n    hosts: [{name: a, agent: {listen: nowhere}}]\n")
    proc = _cli(bad, "hosts", "list")
    assert proc.returncode == 2
    expected = f"{bad}: clients[0].hosts[0].agent.listen: expected an address such as 127.0.0.1:8470"
    assert expected in proc.stderr
