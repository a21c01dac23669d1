"""Agent enrolment figures: the offline bundle's size and build time, the install on a test box, and
the time from ``boxkeeper hosts enroll`` to the agent's first report at the controller.

    .venv/bin/python bench/enroll_bench.py [--repeat 3] [--out bench/results/enroll.md]

Runs as root (the test boxes of tests/boxes, a real ``boxkeeper serve`` on 127.0.2.41). Measured:

  bundle     ``python -m agent.bundle`` wall time with the wheel cache warm (one build first warms
             it), and the tarball's size
  copy       SFTP of the tarball to the box (one SSH connection, loopback)
  install    ``install.sh --root BOX install`` over SSH: checksums, the venv from the box's python3,
             pip from the bundle's wheels, user and directories (a first install: removed between runs)
  enroll 1   one host, first enrolment: the command's wall time, and the time from its start to the
             first report reaching the controller (the report step's own figure)
  enroll 3   ``--client`` with three hosts at once (the hosts run in parallel threads)
  again      a second ``enroll`` of the three: changes nothing, waits for a fresh report of each

Everything it starts is stopped at the end; load loops are bounded (``--repeat``).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.boxes import remote  # noqa: E402
from tests.boxes.fleet import ensure_state_dir  # noqa: E402
from tests.boxes.pytest_plugin import BoxPool  # noqa: E402
from tests.controller.conftest import free_port  # noqa: E402
from tests.controller.proc import ControllerProcess  # noqa: E402

HOST = "127.0.2.41"


def build(out: Path) -> tuple[Path, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "agent.bundle", "--out", str(out)], capture_output=True,
                          text=True, timeout=1800, cwd=REPO, check=True)
    return Path(proc.stdout.split()[0]), time.perf_counter() - started


def uninstall(box: Any) -> None:
    root = box.layout.root
    script = '"$BOX_ROOT/opt/boxkeeper/install.sh"'
    remote.run(box.info, f'[ -x {script} ] && sh {script} --root "$BOX_ROOT" uninstall; '
                         'rm -rf "$BOX_ROOT/etc/boxkeeper"', timeout=120)
    assert not (root / "opt/boxkeeper").exists()


def install_once(box: Any, tarball: Path) -> tuple[float, float]:
    """(copy seconds, install seconds) of one first install over SSH."""
    workdir = remote.run(box.info, "mktemp -d /tmp/boxkeeper-bench-XXXXXX").stdout.strip()
    client = remote.connect(box.info)
    try:
        started = time.perf_counter()
        sftp = client.open_sftp()
        sftp.put(str(tarball), f"{workdir}/{tarball.name}")
        sftp.close()
        copied = time.perf_counter() - started
        top = tarball.name.removesuffix("-linux-x86_64.tar.gz")
        started = time.perf_counter()
        result = remote.run_on(client, f'cd {workdir} && tar xzf {tarball.name} && '
                                       f'sh {top}/install.sh --root "$BOX_ROOT"', timeout=600)
        installed = time.perf_counter() - started
    finally:
        client.close()
    assert result.exit_code == 0, result.stderr
    remote.run(box.info, f"rm -rf {workdir}")
    return copied, installed


def cli(config: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "controller.cli", "--config", str(config), *argv],
                          capture_output=True, text=True, timeout=900, check=False)
    return proc, time.perf_counter() - started


REPORT = re.compile(r"^(\S+): report\s+done: a report from agent \S+, ([0-9.]+)s after the start", re.M)


def reports(output: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in REPORT.finditer(output)}


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    repeat = max(1, min(args.repeat, 10))

    tmp = Path(tempfile.mkdtemp(prefix="bk-enroll-bench-"))
    build(tmp / "warm")  # warms the wheel cache
    tarball, build_s = build(tmp / "dist")
    size = tarball.stat().st_size

    pool = BoxPool(ensure_state_dir(Path(tempfile.mkdtemp(prefix="bxe-", dir="/tmp")), with_1c=False))
    controller: ControllerProcess | None = None
    try:
        boxes = pool.acquire(3)
        copies, installs = [], []
        for _ in range(repeat):
            uninstall(boxes[0])
            c, i = install_once(boxes[0], tarball)
            copies.append(c)
            installs.append(i)
        uninstall(boxes[0])

        (tmp / "state").mkdir()
        (tmp / "state" / "known_hosts").write_text("".join(b.info.known_hosts + "\n" for b in boxes))
        hosts = ", ".join(
            f"{{name: {b.name}, ssh: {{address: '{b.info.address}:{b.info.ssh_port}', "
            f"key_file: {b.info.ssh_key}}}, agent: {{root: {b.layout.root}, "
            f"listen: '{b.info.address}:{free_port(b.info.address)}'}}}}"
            for b in boxes)
        config = tmp / "controller.yaml"
        config.write_text(f"state_dir: {tmp}/state\nclients:\n  - {{name: acme, hosts: [{hosts}]}}\n")
        controller = ControllerProcess(config, tmp, listen=f"{HOST}:0")
        url = controller.start()
        enroll = ("hosts", "enroll", "--controller-url", url, "--bundle", str(tarball))

        one_wall, one_report = [], []
        for _ in range(repeat):
            proc, wall = cli(config, *enroll, boxes[0].name)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            one_wall.append(wall)
            one_report.append(reports(proc.stdout)[boxes[0].name])
            cli(config, "hosts", "remove", boxes[0].name, "--uninstall")
            uninstall(boxes[0])

        proc, three_wall = cli(config, *enroll, "--client", "acme")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        three_reports = reports(proc.stdout)
        proc, again_wall = cli(config, *enroll, "--client", "acme")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        again_reports = reports(proc.stdout)
        for b in boxes:
            cli(config, "hosts", "remove", b.name, "--uninstall")
            uninstall(b)
    finally:
        if controller is not None:
            controller.stop()
        pool.close()

    load = os.getloadavg()
    med = statistics.median
    lines = [
        "# Agent enrolment benchmark",
        "",
        f"Command: `.venv/bin/python bench/enroll_bench.py --repeat {repeat}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        f"Machine: {platform.node() or 'vm'}, {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        "",
        "| what | median (s) | runs (s) |",
        "|---|---|---|",
        f"| bundle build, wheel cache warm | {build_s:.2f} | {build_s:.2f} |",
        f"| copy of the bundle to a test box (SFTP, loopback) | {med(copies):.2f} | {fmt(copies)} |",
        f"| `install.sh` on a test box (first install: venv, offline pip, user, dirs) | "
        f"{med(installs):.2f} | {fmt(installs)} |",
        f"| `hosts enroll` of 1 host: whole command | {med(one_wall):.2f} | {fmt(one_wall)} |",
        f"| `hosts enroll` of 1 host: start → first report at the controller | {med(one_report):.2f} | "
        f"{fmt(one_report)} |",
        f"| `hosts enroll --client` of 3 hosts: whole command | {three_wall:.2f} | {three_wall:.2f} |",
        f"| … start → first report, per host | {med(list(three_reports.values())):.2f} | "
        f"{fmt(list(three_reports.values()))} |",
        f"| second `hosts enroll --client` (nothing to change; waits for a fresh report) | "
        f"{again_wall:.2f} | {again_wall:.2f} (report after {fmt(list(again_reports.values()))}) |",
        "",
        f"Bundle: `{tarball.name}`, **{size / 1e6:.1f} MB** ({size} bytes): the agent's wheel, its pinned "
        "dependencies for CPython 3.9–3.13 (manylinux2014 x86_64), pip, installer, unit, init script.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
