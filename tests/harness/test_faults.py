"""Each fault does what it says, and --undo puts the box back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import paramiko
import pytest

from tests.boxes import Box
from tests.boxes.mariadb import sql
from tests.boxes.procs import port_open, processes_of
from tests.boxes.remote import connect, run, run_on

pytestmark = pytest.mark.integration


def _status(box: Box) -> int | str:
    try:
        return httpx.get(box.info.portal_url, timeout=10).status_code
    except httpx.ConnectError:
        return "refused"


@pytest.mark.parametrize(("service", "effect"), [("nginx", "refused"), ("php-fpm", 502), ("mariadb", 500)])
def test_stopping_a_web_service_breaks_the_portal_until_undone(
    box: Box, service: str, effect: int | str
) -> None:
    assert _status(box) == 200
    box.fault(f"stop-{service}")
    assert not box.is_running(service)
    assert _status(box) == effect
    box.fault(f"stop-{service}", undo=True)
    assert box.is_running(service)
    assert _status(box) == 200


def test_backend_down_shows_the_bitrixenv_502_page(box: Box) -> None:
    box.fault("stop-php-fpm")
    page = httpx.get(box.info.portal_url, timeout=10)
    assert page.status_code == 502 and "Bitrix Environment" in page.text


def test_stop_sshd_refuses_new_logins_and_keeps_open_sessions(box: Box) -> None:
    client = connect(box.info)
    try:
        box.fault("stop-sshd")
        assert not port_open(box.info.address, box.info.ssh_port)
        with pytest.raises((paramiko.SSHException, OSError)):
            connect(box.info, timeout=3)
        assert run_on(client, "echo still-here").stdout.strip() == "still-here"  # like systemctl stop sshd
    finally:
        client.close()
    box.fault("stop-sshd", undo=True)
    assert run(box.info, "echo back").stdout.strip() == "back"


def test_kill_sshd_drops_a_running_command(box: Box) -> None:
    client = connect(box.info)
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.append(run_on(client, "sleep 20; echo done", timeout=30))
    )
    worker.start()
    time.sleep(1.0)
    box.fault("kill-sshd")
    worker.join(timeout=30)
    client.close()
    assert results and getattr(results[0], "exit_code", None) != 0
    assert "done" not in getattr(results[0], "stdout", "")
    assert not port_open(box.info.address, box.info.ssh_port)
    box.fault("kill-sshd", undo=True)
    assert run(box.info, "echo back").stdout.strip() == "back"


def test_backup_dir_full_makes_writes_fail_with_enospc(box: Box) -> None:
    archive = Path(box.info.docroot).parent / "backup/archive"
    box.fault("backup-full")
    res = run(box.info, f"df -P {archive} | tail -1; dd if=/dev/zero of={archive}/b.tar bs=64k count=4")
    assert res.exit_code != 0
    assert "No space left on device" in res.stderr
    assert res.stdout.split()[4] == "100%"
    box.fault("backup-full", undo=True)
    res = run(box.info, f"dd if=/dev/zero of={archive}/b.tar bs=64k count=4 && rm {archive}/b.tar")
    assert res.exit_code == 0, res.stderr


def test_licence_expired_and_back(box: Box) -> None:
    sock = Path(box.info.db.socket)
    query = "SELECT VALUE < CURDATE() FROM b_option WHERE MODULE_ID='main' AND NAME='~support_finish_date'"
    before = sql(sock, "SELECT VALUE FROM b_option WHERE NAME='~support_finish_date'", "portal")
    box.fault("licence-expired")
    assert sql(sock, query, "portal").strip() == "1"
    assert "Your license has expired" in httpx.get(box.info.portal_url, timeout=10).text
    box.fault("licence-expired", undo=True)
    assert sql(sock, "SELECT VALUE FROM b_option WHERE NAME='~support_finish_date'", "portal") == before
    assert "expired" not in httpx.get(box.info.portal_url, timeout=10).text


def test_stop_cron(box: Box) -> None:
    box.fault("stop-cron")
    root = Path(box.info.docroot).parents[2]
    assert not any("cron_runner" in " ".join(p.cmdline()) for p in processes_of(root))
    box.fault("stop-cron", undo=True)
    assert box.is_running("cron")


def test_reset_undoes_every_fault(box: Box) -> None:
    for kind in ("licence-expired", "stop-nginx", "stop-mariadb", "backup-full", "kill-sshd"):
        box.fault(kind)
    box.reset()
    assert _status(box) == 200
    assert run(box.info, "touch $BOX_ROOT/home/bitrix/backup/archive/x && echo ok").stdout.strip() == "ok"


def test_unknown_fault_names_the_known_ones(box: Box) -> None:
    from tests.boxes.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="backup-full"):
        box.fault("disk-on-fire")


def test_slow_network_adds_latency_until_undone(box: Box) -> None:
    box.fault("slow-network")
    started = time.monotonic()
    assert run(box.info, "echo hi").stdout.strip() == "hi"
    ssh_slow = time.monotonic() - started
    started = time.monotonic()
    assert _status(box) == 200
    http_slow = time.monotonic() - started
    # 250 ms each way: an SSH login needs several round trips, an HTTP request at least one
    assert ssh_slow >= 1.0 and http_slow >= 0.5
    box.fault("slow-network", undo=True)
    assert not port_open(box.info.address, box.info.ssh_port + 10000)
    assert run(box.info, "echo hi").stdout.strip() == "hi"
    assert _status(box) == 200


def test_slow_disk_throttles_synchronous_writes_until_undone(box: Box) -> None:
    from tests.boxes import slow

    write_1mib = (
        "s=$(date +%s%N); dd if=/dev/zero of=$BOX_ROOT/slow.bin bs=256k count=4 oflag=direct 2>/dev/null; "
        "e=$(date +%s%N); rm -f $BOX_ROOT/slow.bin; echo $(( (e - s) / 1000000 ))"
    )
    box.fault("slow-disk")
    group = slow.cgroup_of(box)
    mariadbd = (Path(box.info.db.socket).parent / "mariadb.pid").read_text().strip()
    assert mariadbd in (group / "cgroup.procs").read_text().split()
    assert int(run(box.info, write_1mib).stdout.strip()) >= 500  # 1 MiB at 1 MiB/s
    assert _status(box) == 200
    box.fault("slow-disk", undo=True)
    assert not group.exists()
    assert run(box.info, "echo ok").stdout.strip() == "ok"
