"""The offline bundle (``python -m agent.bundle``): what it holds, pip resolving it offline for
every supported Python, the ``.deb`` installed on this machine (then purged), the ``.rpm``'s
content, and the tarball installed on a test box over SSH (``install.sh --root``)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import socket
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import __version__
from agent.bundle import wheels
from tests.agent.bundles import build
from tests.boxes import remote

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOP = f"boxkeeper-agent-{__version__}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundle")
    files = build(out, "--deb", "--rpm")
    by_kind = {p.suffix if p.suffix != ".gz" else ".tar.gz": p for p in files}
    assert set(by_kind) == {".tar.gz", ".deb", ".rpm"}, files
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(by_kind[".tar.gz"]) as tar:
        tar.extractall(unpacked, filter="data")
    return {**by_kind, "dir": unpacked / TOP}


def test_the_tarball_is_named_for_the_version_and_holds_installer_unit_and_wheels(
    built: dict[str, Path],
) -> None:
    assert built[".tar.gz"].name == f"boxkeeper-agent-{__version__}-linux-x86_64.tar.gz"
    top = built["dir"]
    assert {p.name for p in top.iterdir()} == {
        "install.sh", "boxkeeper-agent.service", "boxkeeper-agent.init", "wheels", "SHA256SUMS"}
    assert os.access(top / "install.sh", os.X_OK)
    assert "User=boxkeeper" in (top / "boxkeeper-agent.service").read_text()
    names = [p.name for p in (top / "wheels").iterdir()]
    for python in wheels.PYTHONS:
        tag = "cp" + python.replace(".", "")
        assert any(n.startswith("msgspec-0.20.0-") and f"-{tag}-" in n for n in names), (python, names)
        assert any(n.startswith("pyyaml-") and f"-{tag}-" in n for n in names), (python, names)
    assert sum(n.startswith("pip-") for n in names) == 1
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=top, capture_output=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout


def test_the_agent_wheel_is_the_agent_alone_for_python_39_and_later(built: dict[str, Path]) -> None:
    (wheel,) = (built["dir"] / "wheels").glob(f"boxkeeper_agent-{__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(f"boxkeeper_agent-{__version__}.dist-info/METADATA").decode()
    assert "Requires-Python: >=3.9" in meta
    assert "Requires-Dist: msgspec==0.20.0" in meta
    assert "agent/cli.py" in names and "agent/checks/http.py" in names
    assert not [n for n in names if n.startswith(("controller/", "agent/bundle/"))]


@pytest.mark.parametrize("python", wheels.PYTHONS)
def test_pip_resolves_the_agent_from_the_bundle_alone_for_each_python(
    built: dict[str, Path], python: str, tmp_path: Path
) -> None:
    """What ``install.sh`` asks pip on the box, asked here for that Python's tags, with no index."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-index", "--find-links",
         str(built["dir"] / "wheels"), "--only-binary=:all:", "--platform", wheels.PLATFORM,
         "--python-version", python, "--implementation", "cp", "-d", str(tmp_path), "-q",
         f"boxkeeper-agent=={__version__}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = sorted(p.name.split("-")[0].lower() for p in tmp_path.iterdir())
    assert got == ["boxkeeper_agent", "msgspec", "prometheus_client", "psutil", "pymysql", "pyyaml"]


def test_the_rpm_carries_the_same_files_as_the_deb_and_runs_the_installer(built: dict[str, Path]) -> None:
    deb = subprocess.run(["dpkg-deb", "-c", str(built[".deb"])], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    deb_files = {"/" + line.split()[-1].lstrip("./") for line in deb.splitlines() if not line.startswith("d")}
    rpm = subprocess.run(["rpm", "-qpl", str(built[".rpm"])], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    rpm_files = {line for line in rpm.splitlines() if Path(line).suffix or "/wheels/" in line or
                 line.endswith(("install.sh", "SHA256SUMS"))}
    assert deb_files == rpm_files
    assert f"/opt/boxkeeper/bundle/wheels/boxkeeper_agent-{__version__}-py3-none-any.whl" in rpm_files
    scripts = subprocess.run(["rpm", "-qp", "--scripts", str(built[".rpm"])], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert "/opt/boxkeeper/bundle/install.sh install" in scripts
    assert "/opt/boxkeeper/bundle/install.sh uninstall" in scripts


@pytest.fixture
def listening() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.2.31", 0))
        sock.listen()
        yield f"127.0.2.31:{sock.getsockname()[1]}"


def _as_boxkeeper(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=boxkeeper", "--regid=boxkeeper", "--init-groups", "--", *argv],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_deb_installs_here_runs_the_agent_as_boxkeeper_and_purges(
    built: dict[str, Path], listening: str
) -> None:
    assert not Path("/opt/boxkeeper").exists(), "/opt/boxkeeper exists before the test: not ours to touch"
    agent = "/opt/boxkeeper/venv/bin/boxkeeper-agent"
    try:
        proc = subprocess.run(["dpkg", "-i", str(built[".deb"])], capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"installed: boxkeeper-agent {__version__}" in proc.stdout
        venv_python = Path("/opt/boxkeeper/venv/bin/python")
        system = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2])"],
                                capture_output=True, text=True, timeout=30, check=True).stdout
        ours = subprocess.run([str(venv_python), "-c", "import sys, msgspec; print(sys.version_info[:2]); "
                               "print(msgspec.__version__)"], capture_output=True, text=True, timeout=30,
                              check=True).stdout.split("\n")
        assert ours[0] == system.strip() and ours[1] == "0.20.0"  # the box's python3, the pinned wheels
        pw = pwd.getpwnam("boxkeeper")
        assert pw.pw_uid != 0 and grp.getgrgid(pw.pw_gid).gr_name == "boxkeeper"
        etc = os.stat("/etc/boxkeeper")
        assert (etc.st_mode & 0o777, grp.getgrgid(etc.st_gid).gr_name) == (0o750, "boxkeeper")

        config = Path("/etc/boxkeeper/agent.yaml")
        config.write_text(yaml.safe_dump({
            "host": "deb-test", "interval": "15s", "listen": "127.0.2.31:19847",
            "checks": [{"name": "port", "type": "tcp", "address": listening},
                       {"name": "root-disk", "type": "disk", "path": "/", "warning": "99%",
                        "critical": "100%"}],
        }))
        os.chown(config, 0, pw.pw_gid)
        config.chmod(0o640)
        validate = _as_boxkeeper(agent, "validate", "--config", str(config))
        assert validate.returncode == 0 and "config OK: 2 checks" in validate.stdout, validate.stderr
        check = _as_boxkeeper(agent, "check", "--config", str(config), "--json")
        assert check.returncode == 0, check.stdout + check.stderr
        assert {r["name"]: r["status"] for r in json.loads(check.stdout)} == {"port": "OK", "root-disk": "OK"}
    finally:
        purge = subprocess.run(["dpkg", "--purge", "boxkeeper-agent"], capture_output=True, text=True,
                               timeout=300, check=False)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    for gone in ("/opt/boxkeeper", "/etc/boxkeeper", "/var/lib/boxkeeper", "/etc/init.d/boxkeeper-agent"):
        assert not Path(gone).exists(), gone


def _run(box: Any, command: str, timeout: float = 300) -> remote.Result:
    return remote.run(box.info, command, timeout=timeout)


def test_the_tarball_installs_on_a_test_box_over_ssh_once(built: dict[str, Path], box: Any) -> None:
    root = box.layout.root
    made = _run(box, "mktemp -d /tmp/boxkeeper-bundle-XXXXXX")
    assert made.exit_code == 0, made.stderr
    workdir = made.stdout.strip()
    client = remote.connect(box.info)
    try:
        sftp = client.open_sftp()
        sftp.put(str(built[".tar.gz"]), f"{workdir}/{built['.tar.gz'].name}")
        sftp.close()
    finally:
        client.close()
    unpack = f'cd {workdir} && tar xzf {shlex.quote(built[".tar.gz"].name)}'
    install = f'sh {workdir}/{TOP}/install.sh --root "$BOX_ROOT"'
    try:
        first = _run(box, f"{unpack} && {install}")
        assert first.exit_code == 0, first.stdout + first.stderr
        assert f"installed: boxkeeper-agent {__version__} in {root}/opt/boxkeeper/versions/{__version__}" \
            in first.stdout
        assert (root / "opt/boxkeeper/venv").resolve() == root / f"opt/boxkeeper/versions/{__version__}"
        assert (root / "etc/init.d/boxkeeper-agent").is_file()  # no systemd on a test box
        assert not Path("/opt/boxkeeper").exists()  # this machine's /opt is not the box's
        again = _run(box, install)
        assert again.exit_code == 0 and again.stdout.strip().endswith(
            f"unchanged: boxkeeper-agent {__version__} already installed in {root}/opt/boxkeeper/versions/"
            f"{__version__}"), again.stdout

        config = root / "etc/boxkeeper/agent.yaml"
        agent = '"$BOX_ROOT/opt/boxkeeper/venv/bin/boxkeeper-agent"'
        quoted = shlex.quote(str(config))
        discover = _run(box, f'{agent} discover --root "$BOX_ROOT" --proc /proc --paths-under-root '
                             f'--host {box.name} --write {quoted} && chgrp boxkeeper {quoted}')
        assert discover.exit_code == 0, discover.stderr
        check = _run(box, f'setpriv --reuid=boxkeeper --regid=boxkeeper --init-groups -- '
                          f'{agent} check --json --config {quoted}')
        statuses = {r["name"]: r["status"] for r in json.loads(check.stdout)}
        assert statuses and set(statuses.values()) == {"OK"}, check.stdout + check.stderr
    finally:
        gone = _run(box, f'"$BOX_ROOT/opt/boxkeeper/install.sh" --root "$BOX_ROOT" uninstall; '
                         f'rm -rf {workdir} "$BOX_ROOT/etc/boxkeeper"')
    assert gone.exit_code == 0, gone.stdout + gone.stderr
    assert not (root / "opt/boxkeeper").exists()


def test_a_damaged_bundle_is_refused_before_anything_changes(built: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / TOP
    shutil.copytree(built["dir"], copy)
    wheel = next((copy / "wheels").glob("psutil-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    root = tmp_path / "root"
    root.mkdir()
    proc = subprocess.run(["sh", str(copy / "install.sh"), "--root", str(root)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert f"the bundle in {copy} is damaged: run 'sha256sum -c SHA256SUMS' there" in proc.stderr
    assert list(root.iterdir()) == []


def test_the_installer_names_a_wrong_argument() -> None:
    proc = subprocess.run(["sh", str(Path(__file__).resolve().parents[2] / "agent/bundle/install.sh"),
                           "--frobnicate"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "unknown argument: --frobnicate" in proc.stderr
