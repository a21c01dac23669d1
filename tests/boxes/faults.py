"""Faults on demand, each with its undo. Active faults are recorded in <box>/faults.json.

stop-<service>    stop sshd | nginx | php-fpm | mariadb | cron | pg (undo: start it)
kill-sshd         SIGKILL sshd and every session it serves (undo: start sshd)
backup-full       a full 512 KiB tmpfs mounted on the backup dir: writes fail with ENOSPC
                  (falls back to a loop-mounted ext4 image when tmpfs cannot be mounted)
licence-expired   main/~support_finish_date set to 20 days ago (undo: the previous date)
slow-network      250 ms added each way to SSH and HTTP (a user-space delaying proxy takes the
                  box's ports; sshd and nginx move behind it) — this kernel has no sch_netem
slow-disk         the box's processes go into a cgroup-v1 blkio group throttled to 1 MiB/s and
                  50 IO/s on the state dir's disk: fsync'd and direct I/O (MariaDB commits,
                  `dd oflag=direct`, uncached reads) slow down; buffered writes do not
1c-agent-down     the 1C cluster agent is unreachable for `rac` (--with-1c boxes)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from . import mariadb, procs, slow
from .errors import BoxCommandError, BoxError, UnknownNameError
from .layout import DB_NAME

if TYPE_CHECKING:
    from .box import Box

BACKUP_FS_BYTES = 512 * 1024


def kinds(box: Box) -> list[str]:
    names = [f"stop-{s}" for s in box.services]
    names += ["kill-sshd", "backup-full", "licence-expired", "slow-network", "slow-disk"]
    return names + (["1c-agent-down"] if box.with_1c else [])


def _state_file(box: Box) -> Path:
    return box.layout.root / "faults.json"


def active(box: Box) -> dict[str, dict[str, str]]:
    try:
        data: dict[str, dict[str, str]] = json.loads(_state_file(box).read_text())
        return data
    except (OSError, ValueError):
        return {}


def _save(box: Box, state: dict[str, dict[str, str]]) -> None:
    _state_file(box).write_text(json.dumps(state, indent=2))


def apply(box: Box, kind: str, *, undo: bool = False) -> None:
    if kind not in kinds(box):
        raise UnknownNameError(f"unknown fault {kind!r}; known: {', '.join(kinds(box))}", box=box.name)
    state = active(box)
    if undo:
        _undo(box, kind, state.pop(kind, {}))
    else:
        state[kind] = _do(box, kind)
    _save(box, state)


def _do(box: Box, kind: str) -> dict[str, str]:
    if kind.startswith("stop-"):
        box.stop_service(kind.removeprefix("stop-"))
        return {}
    if kind == "kill-sshd":
        box.kill_sshd()
        return {}
    if kind == "licence-expired":
        old = mariadb.sql(
            box.layout.mysql_socket,
            "SELECT VALUE FROM b_option WHERE MODULE_ID='main' AND NAME='~support_finish_date'",
            DB_NAME,
        ).strip()
        mariadb.sql(
            box.layout.mysql_socket,
            "UPDATE b_option SET VALUE=DATE_FORMAT(CURDATE() - INTERVAL 20 DAY, "
            "'%Y-%m-%d') WHERE MODULE_ID='main' AND NAME='~support_finish_date'",
            DB_NAME,
        )
        return {"previous": old}
    if kind == "1c-agent-down":
        from .doubles.state import ClusterState

        ClusterState(box.layout.onec_state).set_agent_up(False)
        return {}
    if kind == "backup-full":
        return _fill_backup_dir(box)
    if kind == "slow-network":
        slow.network_on(box)
        return {}
    if kind == "slow-disk":
        return {"cgroup": str(slow.disk_on(box))}
    raise AssertionError(kind)


def _undo(box: Box, kind: str, saved: dict[str, str]) -> None:
    if kind.startswith("stop-"):
        box.start_service(kind.removeprefix("stop-"))
    elif kind == "kill-sshd":
        box.start_service("sshd")
    elif kind == "licence-expired" and saved.get("previous"):
        value = saved["previous"].replace("'", "")
        mariadb.sql(
            box.layout.mysql_socket,
            f"UPDATE b_option SET VALUE='{value}' WHERE MODULE_ID='main' AND NAME='~support_finish_date'",  # noqa: S608 (a date we read)
            DB_NAME,
        )
    elif kind == "1c-agent-down":
        from .doubles.state import ClusterState

        ClusterState(box.layout.onec_state).set_agent_up(True)
    elif kind == "backup-full":
        _unmount(box.layout.backup_dir)
    elif kind == "slow-network":
        slow.network_off(box)
    elif kind == "slow-disk":
        slow.disk_off(box)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


def _fill_backup_dir(box: Box) -> dict[str, str]:
    target = box.layout.backup_dir
    target.mkdir(parents=True, exist_ok=True)
    res = _run(["mount", "-t", "tmpfs", "-o", f"size={BACKUP_FS_BYTES},mode=0755", "boxfull", str(target)])
    how = "tmpfs"
    if res.returncode != 0:
        image = box.layout.root / "backup-full.img"
        with open(image, "wb") as out:
            out.truncate(2 * 1024 * 1024)
        mkfs = _run(["mkfs.ext4", "-q", "-F", str(image)])
        res = _run(["mount", "-o", "loop", str(image), str(target)]) if mkfs.returncode == 0 else mkfs
        how = "loop-ext4"
        if res.returncode != 0:
            raise BoxCommandError(["mount"], res.returncode, res.stderr, box=box.name)
    _run(["chown", "bitrix:bitrix", str(target)])
    # Fill it: from now on every write there fails with ENOSPC.
    chunk = b"\0" * 65536
    with open(target / ".filler", "wb") as out:
        try:
            for _ in range(10_000):
                out.write(chunk)
                out.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    with contextlib.suppress(OSError), open(target / ".filler", "ab") as out:
        out.write(b"\0")  # grab the last partial block
    probe_ok = True
    try:
        with tempfile.NamedTemporaryFile(dir=target) as probe:
            probe.write(b"x" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError:
        probe_ok = False
    if probe_ok:
        raise BoxError("backup dir is mounted but still accepts writes", box=box.name)
    return {"mount": how}


def _mounted(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def _unmount(path: Path) -> None:
    for _ in range(5):
        if not _mounted(path):
            return
        if _run(["umount", str(path)]).returncode != 0:
            _run(["umount", "-l", str(path)])


def undo_mounts(box: Box) -> None:
    """Unmount whatever is mounted under the box; stop the network delay (used by `down`)."""
    procs.stop(box.layout.pid_file("netdelay"))
    with open("/proc/mounts") as mounts:
        points = [
            line.split()[1] for line in mounts if line.split()[1].startswith(str(box.layout.root) + "/")
        ]
    for point in sorted(points, reverse=True):
        _unmount(Path(point))


def undo_all(box: Box) -> None:
    for kind in reversed(list(active(box))):  # last in, first out: a stopped DB starts before its rows change
        apply(box, kind, undo=True)
    undo_mounts(box)
