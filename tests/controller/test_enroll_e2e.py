"""``boxkeeper hosts enroll`` end to end: a real ``boxkeeper serve``, real test boxes reached over
SSH with pinned keys, the real bundle (``python -m agent.bundle``) installed on each, agents that
push to the controller as the unprivileged user ``boxkeeper``; ``--upgrade`` with a good and a
deliberately broken bundle; ``hosts remove --uninstall``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from agent import __version__
from tests.agent.bundles import broken_agent_source, build
from tests.controller.conftest import free_port
from tests.controller.proc import ControllerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOST = "127.0.2.40"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (tarball,) = build(tmp_path_factory.mktemp("dist"))
    return tarball


def _host_yaml(box: Any) -> str:
    info = box.info
    ssh = f"{{address: '{info.address}:{info.ssh_port}', key_file: {info.ssh_key}}}"
    agent = f"{{root: {box.layout.root}, listen: '{info.address}:{free_port(info.address)}'}}"
    return f"{{name: {box.name}, ssh: {ssh}, agent: {agent}}}"


class Fleet:
    def __init__(self, tmp: Path, boxes: list[Any], *, trusted: bool = True) -> None:
        self.tmp = tmp
        self.boxes = boxes
        self.config = tmp / "controller.yaml"
        hosts = ", ".join(_host_yaml(b) for b in boxes)
        self.config.write_text(f"state_dir: {tmp}/state\nclients:\n  - {{name: acme, hosts: [{hosts}]}}\n"
                               "detection: {evaluate_interval: 1s}\n")
        (tmp / "state").mkdir()
        if trusted:  # what `boxkeeper hosts trust` leaves behind
            (tmp / "state" / "known_hosts").write_text("".join(b.info.known_hosts + "\n" for b in boxes))
        self.controller = ControllerProcess(self.config, tmp, listen=f"{HOST}:0")
        self.url = ""

    def cli(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "controller.cli", "--config", str(self.config), *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def enroll(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return self.cli("hosts", "enroll", "--controller-url", self.url, *argv)

    def hosts(self) -> dict[str, dict[str, Any]]:
        proc = self.cli("hosts", "list", "--json")
        assert proc.returncode == 0, proc.stderr
        return {h["host"]: h for h in json.loads(proc.stdout)}


@pytest.fixture
def fleet_of(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(boxes: list[Any], *, trusted: bool = True) -> Fleet:
        fleet = Fleet(_mkdir(tmp_path / f"fleet{len(made)}"), boxes, trusted=trusted)
        made.append(fleet)
        fleet.url = fleet.controller.start()
        return fleet

    yield make
    for fleet in made:
        for box in fleet.boxes:  # leave the pooled boxes without an agent
            fleet.cli("hosts", "remove", box.name, "--uninstall")
        fleet.controller.stop()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _agent_processes(box: Any) -> list[psutil.Process]:
    marker = f"{box.layout.root}/opt/boxkeeper/"
    found = []
    for proc in psutil.process_iter(["cmdline", "username"]):
        cmd = proc.info["cmdline"] or []
        if any(part.startswith(marker) for part in cmd) and "run" in cmd:
            found.append(proc)
    return found


def _installed(box: Any) -> str:
    root = box.layout.root
    proc = subprocess.run(["sh", f"{root}/opt/boxkeeper/install.sh", "--root", str(root), "version"],
                          capture_output=True, text=True, timeout=60, check=False)
    return proc.stdout.strip()


def test_three_boxes_enrol_in_one_command_and_report_as_boxkeeper(
    boxes: Callable[..., list[Any]], fleet_of: Callable[..., Fleet], bundle: Path
) -> None:
    three = boxes(3)
    fleet = fleet_of(three)
    first = fleet.enroll("--client", "acme", "--bundle", str(bundle))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"enrolled 3 of 3 host(s) with agent {__version__}" in first.stdout
    for box in three:
        lines = [line for line in first.stdout.splitlines() if line.startswith(f"{box.name}: ")]
        steps = {line.split()[1]: line.split()[2] for line in lines}
        assert steps == {"connect": "unchanged:", "inventory": "unchanged:", "install": "done:",
                         "config": "done:", "token": "done:", "service": "done:", "report": "done:"}, lines
        (agent,) = _agent_processes(box)
        assert agent.info["username"] == "boxkeeper"
        token = box.layout.root / "etc/boxkeeper/agent.token"
        assert token.stat().st_mode & 0o777 == 0o600 and token.owner() == "boxkeeper"
    hosts = fleet.hosts()
    assert {n: (h["client"], h["token"]) for n, h in hosts.items()} == {b.name: ("acme", True) for b in three}
    assert all(h["last_report_at"] for h in hosts.values())

    # a second run finds everything right: nothing changes, the hosts still report
    tokens = {b.name: (b.layout.root / "etc/boxkeeper/agent.token").read_text() for b in three}
    pids = {b.name: _agent_processes(b)[0].pid for b in three}
    again = fleet.enroll("--client", "acme", "--bundle", str(bundle))
    assert again.returncode == 0, again.stdout + again.stderr
    changed = [line for line in again.stdout.splitlines() if " done: " in line and " report " not in line]
    assert changed == []
    assert tokens == {b.name: (b.layout.root / "etc/boxkeeper/agent.token").read_text() for b in three}
    assert pids == {b.name: _agent_processes(b)[0].pid for b in three}

    # what is missing is put back: the init script deleted by hand
    init = three[1].layout.root / "etc/init.d/boxkeeper-agent"
    init.unlink()
    repaired = fleet.enroll(three[1].name, "--bundle", str(bundle))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"{three[1].name}: install   done: boxkeeper-agent {__version__} installed; repaired: service: " \
        f"init script {init}" in repaired.stdout
    assert init.is_file()

    # remove --uninstall: the agent stops and goes, the token is revoked
    gone = fleet.cli("hosts", "remove", three[0].name, "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert _agent_processes(three[0]) == []
    assert not (three[0].layout.root / "opt/boxkeeper").exists()
    assert fleet.hosts()[three[0].name]["token"] is False


def test_an_upgrade_moves_the_agent_and_a_broken_one_is_rolled_back(
    box: Any, fleet_of: Callable[..., Fleet], bundle: Path, tmp_path: Path
) -> None:
    fleet = fleet_of([box])
    enrolled = fleet.enroll(box.name, "--bundle", str(bundle))
    assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr

    (newer,) = build(tmp_path / "newer", version="0.1.1")
    same = fleet.enroll(box.name, "--bundle", str(newer))  # without --upgrade: left as it is
    assert same.returncode == 0 and "--upgrade moves it" in same.stdout, same.stdout + same.stderr
    assert _installed(box) == __version__

    upgraded = fleet.enroll(box.name, "--upgrade", "--bundle", str(newer))
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert _installed(box) == "0.1.1"
    assert f"{box.name}: report    done: a report from agent 0.1.1" in upgraded.stdout

    (broken,) = build(tmp_path / "broken", version="0.1.2", source=broken_agent_source(tmp_path))
    failed = fleet.enroll(box.name, "--upgrade", "--bundle", str(broken), "--timeout", "20")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"{box.name}: rollback  done: back to boxkeeper-agent 0.1.1" in failed.stdout
    assert "rolled back to boxkeeper-agent 0.1.1, which reports again" in failed.stderr
    assert _installed(box) == "0.1.1"
    before = fleet.hosts()[box.name]["last_seq"]
    # the host keeps reporting: an enrol run now waits for a fresh report of 0.1.1 and changes nothing
    after = fleet.enroll(box.name, "--bundle", str(newer))
    assert after.returncode == 0, after.stdout + after.stderr
    assert f"{box.name}: report    done: a report from agent 0.1.1" in after.stdout
    assert fleet.hosts()[box.name]["last_seq"] > before


def test_an_unpinned_host_fails_at_the_connect_step_and_says_how_to_trust_it(
    box: Any, fleet_of: Callable[..., Fleet], bundle: Path
) -> None:
    fleet = fleet_of([box], trusted=False)
    proc = fleet.enroll(box.name, "--bundle", str(bundle))
    assert proc.returncode == 1
    assert f"boxkeeper: {box.name}: step connect failed: no pinned host key" in proc.stderr
    assert f"run `boxkeeper hosts trust {box.name}`" in proc.stderr
    assert not (box.layout.root / "opt/boxkeeper").exists()
