"""`python -m tests.boxes up|stage|fault|down` as a person uses it, and `down` leaves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.boxes import Box, BoxInfo
from tests.boxes.procs import port_open, processes_of
from tests.boxes.remote import run

REPO = Path(__file__).resolve().parents[2]
KEYS = [
    "name",
    "address",
    "ssh_port",
    "ssh_user",
    "ssh_key",
    "known_hosts",
    "host_key_fingerprint",
    "portal_url",
    "docroot",
    "db",
    "pg",
]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.boxes", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bxc-", dir="/tmp"))
    yield path
    _cli("down", "--state-dir", str(path))
    subprocess.run(["rm", "-rf", str(path)], check=False)


def test_box_info_json_round_trip() -> None:
    data = {
        "name": "box11",
        "address": "127.0.0.11",
        "ssh_port": 22011,
        "ssh_user": "root",
        "ssh_key": "/k",
        "known_hosts": "[127.0.0.11]:22011 ssh-ed25519 AAAA",
        "host_key_fingerprint": "SHA256:x",
        "portal_url": "http://127.0.0.11:18011/",
        "docroot": "/d",
        "db": {
            "host": "127.0.0.11",
            "port": 33011,
            "socket": "/s",
            "name": "portal",
            "user": "bitrix",
            "password": "p",
        },
        "pg": None,
    }
    info = BoxInfo.from_dict(data)
    assert info.to_dict() == data
    assert list(json.loads(info.to_json())) == KEYS


@pytest.mark.integration
def test_up_stage_fault_down(state_dir: Path) -> None:
    up = _cli("up", "--count", "2", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    infos = [BoxInfo.from_dict(d) for d in json.loads(up.stdout)]
    assert [list(d) for d in json.loads(up.stdout)] == [KEYS, KEYS]
    assert list(json.loads(up.stdout)[0]["db"]) == ["host", "port", "socket", "name", "user", "password"]
    assert len({i.address for i in infos}) == 2
    for info in infos:
        assert httpx.get(info.portal_url, timeout=10).status_code == 200
        assert info.pg is None

    first = infos[0]
    assert (
        _cli("stage", "--state-dir", str(state_dir), "--box", first.name, "--release", "good").returncode == 0
    )
    res = run(first, f"cd {first.docroot}/bitrix && php bitrix.php update:modules -n")
    assert res.exit_code == 0 and "25.100.300" in httpx.get(first.portal_url, timeout=10).text

    assert (
        _cli("fault", "--state-dir", str(state_dir), "--box", first.name, "--fault", "stop-nginx").returncode
        == 0
    )
    assert not port_open(first.address, int(first.portal_url.rsplit(":", 1)[1].strip("/")))
    assert (
        _cli(
            "fault", "--state-dir", str(state_dir), "--box", first.name, "--fault", "stop-nginx", "--undo"
        ).returncode
        == 0
    )
    assert httpx.get(first.portal_url, timeout=10).status_code == 200
    bad = _cli("fault", "--state-dir", str(state_dir), "--box", first.name, "--fault", "no-such")
    assert bad.returncode == 2 and "known:" in bad.stderr

    # a hung updater and an open SSH session must not survive `down`
    _cli("stage", "--state-dir", str(state_dir), "--box", first.name, "--release", "hang")
    run(first, f"cd {first.docroot}/bitrix && php bitrix.php update:modules -n", timeout=3)
    fault = _cli("fault", "--state-dir", str(state_dir), "--box", infos[1].name, "--fault", "backup-full")
    assert fault.returncode == 0
    down = _cli("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert processes_of(state_dir) == []
    live = [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if str(state_dir) in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert live == []
    for info in infos:
        ports = [info.ssh_port, info.db.port, int(info.portal_url.rsplit(":", 1)[1].strip("/"))]
        assert not any(port_open(info.address, p) for p in ports)
    assert not any(str(state_dir) in line for line in Path("/proc/mounts").read_text().splitlines())


@pytest.mark.integration
def test_three_boxes_from_the_fixture(boxes: Callable[..., list[Box]]) -> None:
    three = boxes(3)
    assert len({b.info.address for b in three}) == 3
    for b in three:
        page = httpx.get(b.info.portal_url, timeout=10)
        assert page.status_code == 200 and "25.100.200" in page.text
