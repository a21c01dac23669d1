"""The slow-network and slow-disk faults (see faults.py for what each does and does not slow)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import procs, servers
from .errors import BoxError

if TYPE_CHECKING:
    from .box import Box

NET_DELAY_MS = 250
INTERNAL_OFFSET = 10000
BLKIO = Path("/sys/fs/cgroup/blkio")
DISK_BPS = 1024 * 1024
DISK_IOPS = 50


def _proxy_pid_file(box: Box) -> Path:
    return box.layout.pid_file("netdelay")


def network_on(box: Box) -> None:
    lay = box.layout
    ssh_inner, http_inner = lay.ssh_port + INTERNAL_OFFSET, lay.http_port + INTERNAL_OFFSET
    servers.write_sshd_config(lay, ssh_inner)
    servers.write_web_configs(lay, http_inner)
    for service, start in (("sshd", servers.start_sshd), ("nginx", servers.start_nginx)):
        was_running = box.is_running(service)
        box.stop_service(service)
        if was_running:
            start(lay)
            servers.wait_port(lay, service, ssh_inner if service == "sshd" else http_inner)
    routes = [
        f"{lay.address}:{lay.ssh_port}={lay.address}:{ssh_inner}",
        f"{lay.address}:{lay.http_port}={lay.address}:{http_inner}",
    ]
    procs.spawn(
        [
            sys.executable,
            str(Path(__file__).with_name("delay_proxy.py")),
            "--delay-ms",
            str(NET_DELAY_MS),
            *routes,
        ],
        log=lay.logs / "netdelay.log",
        pid_file=_proxy_pid_file(box),
    )
    servers.wait_port(lay, "netdelay", lay.ssh_port)
    servers.wait_port(lay, "netdelay", lay.http_port)


def network_off(box: Box) -> None:
    procs.stop(_proxy_pid_file(box))
    servers.write_sshd_config(box.layout)
    servers.write_web_configs(box.layout)
    for service in ("sshd", "nginx"):
        was_running = box.is_running(service)
        box.stop_service(service)
        if was_running:
            box.start_service(service)


def cgroup_of(box: Box) -> Path:
    return BLKIO / ("boxkeeper-" + hashlib.sha1(str(box.layout.root).encode()).hexdigest()[:12])  # noqa: S324


def disk_on(box: Box) -> Path:
    if not (BLKIO / "cgroup.procs").exists():
        raise BoxError("slow-disk needs the cgroup-v1 blkio controller at /sys/fs/cgroup/blkio", box=box.name)
    dev = os.stat(box.layout.root).st_dev
    if os.major(dev) == 0:
        raise BoxError("slow-disk: the state dir is not on a block device (tmpfs/overlay?)", box=box.name)
    group = cgroup_of(box)
    group.mkdir(exist_ok=True)
    device = f"{os.major(dev)}:{os.minor(dev)}"
    for name, value in (
        ("read_bps_device", DISK_BPS),
        ("write_bps_device", DISK_BPS),
        ("read_iops_device", DISK_IOPS),
        ("write_iops_device", DISK_IOPS),
    ):
        (group / f"blkio.throttle.{name}").write_text(f"{device} {value}\n")
    pids = {p.pid for p in procs.processes_of(box.layout.root)}
    for service in box.services:
        pid = procs.read_pid(box.layout.pid_file(service))
        if pid is not None and procs.is_running(pid):
            pids.add(pid)
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            (group / "cgroup.procs").write_text(f"{pid}\n")
    return group


def disk_off(box: Box) -> None:
    group = cgroup_of(box)
    if not group.exists():
        return
    for _ in range(20):
        with contextlib.suppress(OSError):
            for line in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (BLKIO / "cgroup.procs").write_text(f"{line}\n")
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
