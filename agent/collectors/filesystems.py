"""Space and inodes of mounted filesystems, each mount with its own timeout.

Samples (gauges): ``boxkeeper_filesystem_{size,free,avail}_bytes{mountpoint,fstype}`` ("free"
includes the blocks reserved for root, "avail" is what ordinary users such as ``bitrix`` or
``mysql`` can still write), ``boxkeeper_filesystem_{files,files_free}{mountpoint}`` (inodes).

A hung NFS/CIFS server blocks ``statvfs`` in the kernel, uninterruptibly. So every mount is
queried on a reused worker thread (:class:`~agent.workers.WorkerPool` of one) and the call is
abandoned after ``timeout`` seconds (its thread is written off and replaced): the mount is
skipped, a WARNING is logged once, ``boxkeeper_filesystem_stat_timeouts_total{mountpoint}`` counts
each collection that had to skip it and ``boxkeeper_filesystem_unresponsive{mountpoint}`` is 1.
While the abandoned call is still blocked no second call is started on that mount (threads do not
pile up); once it returns the mount is queried again and an INFO line says it recovered.

Pseudo filesystems (``DEFAULT_SKIP_FSTYPES``) and kernel/container mount points
(``DEFAULT_SKIP_MOUNTPOINTS``) are skipped; both are constructor options.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from agent.report import Sample
from agent.workers import WorkerPool

log = logging.getLogger(__name__)

DEFAULT_SKIP_FSTYPES = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal", "fusectl", "hugetlbfs",
    "iso9660", "mqueue", "nsfs", "overlay", "proc", "procfs", "pstore", "ramfs", "rpc_pipefs",
    "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "nfsd", "none",
})
DEFAULT_SKIP_MOUNTPOINTS = (
    r"^/(dev|proc|sys|run/credentials/.+|run/user/.+|var/lib/docker/.+|var/lib/containers/storage/.+"
    r"|var/lib/kubelet/.+|snap/.+)($|/)"
)


class PartitionSource(Protocol):
    def disk_partitions(self, all: bool = False) -> Any: ...


class _Call:
    """One statvfs call, run by a worker of the collector's pool."""

    __slots__ = ("_mountpoint", "_statvfs", "done", "error", "job", "result")

    def __init__(self, statvfs: Callable[[str], Any], mountpoint: str, pool: WorkerPool) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._statvfs = statvfs
        self._mountpoint = mountpoint
        self.job = pool.submit(self._run, f"statvfs {mountpoint}")

    def _run(self) -> None:
        try:
            self.result = self._statvfs(self._mountpoint)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class FilesystemCollector:
    name = "filesystems"

    def __init__(
        self,
        ps: PartitionSource,
        *,
        statvfs: Callable[[str], Any] = os.statvfs,
        timeout: float = 2.0,
        skip_fstypes: Iterable[str] = DEFAULT_SKIP_FSTYPES,
        skip_mountpoints: str = DEFAULT_SKIP_MOUNTPOINTS,
    ) -> None:
        self._ps = ps
        self._statvfs = statvfs
        self._timeout = timeout
        self._skip_fstypes = frozenset(skip_fstypes)
        self._skip_mountpoints = re.compile(skip_mountpoints)
        self._lock = threading.Lock()
        self._pool = WorkerPool(1, name="statvfs")  # one reused thread; a hung one is replaced
        self._hung: dict[str, _Call] = {}
        self._timeouts: dict[str, int] = {}
        self._failed: set[str] = set()

    def mounts(self) -> list[tuple[str, str]]:
        """(mountpoint, fstype) of the filesystems this collector looks at, first mount wins."""
        seen: dict[str, str] = {}
        for part in self._ps.disk_partitions(all=True):
            if part.fstype in self._skip_fstypes or self._skip_mountpoints.match(part.mountpoint):
                continue
            seen.setdefault(part.mountpoint, part.fstype)
        return sorted(seen.items())

    def collect(self) -> tuple[Sample, ...]:
        with self._lock:
            samples: list[Sample] = []
            for mountpoint, fstype in self.mounts():
                st = self._stat(mountpoint)
                if st is None:
                    continue
                space = {"mountpoint": mountpoint, "fstype": fstype}
                inodes = {"mountpoint": mountpoint}
                block = st.f_frsize
                samples += [
                    Sample("boxkeeper_filesystem_size_bytes", float(st.f_blocks * block), "gauge", space),
                    Sample("boxkeeper_filesystem_free_bytes", float(st.f_bfree * block), "gauge", space),
                    Sample("boxkeeper_filesystem_avail_bytes", float(st.f_bavail * block), "gauge", space),
                    Sample("boxkeeper_filesystem_files", float(st.f_files), "gauge", inodes),
                    Sample("boxkeeper_filesystem_files_free", float(st.f_ffree), "gauge", inodes),
                ]
            for mountpoint, count in sorted(self._timeouts.items()):
                labels = {"mountpoint": mountpoint}
                hung = 1.0 if mountpoint in self._hung else 0.0
                samples += [
                    Sample("boxkeeper_filesystem_stat_timeouts_total", float(count), "counter", labels),
                    Sample("boxkeeper_filesystem_unresponsive", hung, "gauge", labels),
                ]
            return tuple(samples)

    def _stat(self, mountpoint: str) -> Any:
        previous = self._hung.get(mountpoint)
        if previous is not None:
            if not previous.done.is_set():
                self._timeouts[mountpoint] += 1
                return None
            del self._hung[mountpoint]
            log.info("filesystem %s answers again", mountpoint)
        call = _Call(self._statvfs, mountpoint, self._pool)
        if not call.done.wait(self._timeout):
            self._pool.retire(call.job)  # its thread stays blocked in the kernel; a new one serves
            self._hung[mountpoint] = call
            self._timeouts[mountpoint] = self._timeouts.get(mountpoint, 0) + 1
            log.warning(
                "filesystem %s did not answer statvfs within %.1fs; skipping it until it does",
                mountpoint, self._timeout,
            )
            return None
        if call.error is not None:
            if mountpoint not in self._failed:
                self._failed.add(mountpoint)
                log.warning("filesystem %s: statvfs failed: %s", mountpoint, call.error)
            return None
        self._failed.discard(mountpoint)
        return call.result
