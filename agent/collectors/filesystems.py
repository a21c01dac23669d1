"""Space and inodes of mounted filesystems, each mount with its own timeout.

Samples (gauges): ``boxkeeper_filesystem_{size,free,avail}_bytes{mountpoint,fstype}`` ("free"
includes the blocks reserved for root, "avail" is what ordinary users such as ``bitrix`` or
``mysql`` can still write), ``boxkeeper_filesystem_{files,files_free}{mountpoint}`` (inodes).

A hung NFS/CIFS server blocks ``statvfs`` in the kernel, uninterruptibly. So every mount is
queried on a reused worker thread (:class:`~agent.workers.WorkerPool` of one; the mounts of one
collection one after the other in one job, so one thread hand-over per collection) and each call
is abandoned after ``timeout`` seconds (its thread is written off and replaced, and the mounts
after it are queried on the new one): the mount is
skipped, a WARNING is logged once, ``boxkeeper_filesystem_stat_timeouts_total{mountpoint}`` counts
each collection that had to skip it and ``boxkeeper_filesystem_unresponsive{mountpoint}`` is 1.
While the abandoned call is still blocked no second call is started on that mount (threads do not
pile up); once it returns the mount is queried again and an INFO line says it recovered.

The mounts come from ``ps.disk_partitions(all=True)``: in the agent a
:class:`~agent.collectors.mounts.MountTable`, which reads ``/proc/self/mounts`` again only when
a mount or unmount happened (psutil where there is no /proc).

Pseudo filesystems (``DEFAULT_SKIP_FSTYPES``) and kernel/container mount points
(``DEFAULT_SKIP_MOUNTPOINTS``) are skipped; both are constructor options.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Optional, Protocol

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
    """One statvfs call of one mount (run by a :class:`_Batch`)."""

    __slots__ = ("done", "error", "mountpoint", "result")

    def __init__(self, mountpoint: str) -> None:
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = threading.Event()
        self.mountpoint = mountpoint

    def run(self, statvfs: Callable[[str], Any]) -> None:
        try:
            self.result = statvfs(self.mountpoint)
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()


class _Batch:
    """The statvfs calls of several mounts, one after the other, as one job of the collector's
    pool: one hand-over to the worker thread per collection instead of one per mount. The
    collector still waits for each call with its own timeout; when one hangs, the batch is
    ``abandoned`` (its worker, blocked in that call, does no more of it) and the mounts after it
    go to a new batch."""

    __slots__ = ("abandoned", "calls", "job")

    def __init__(self, statvfs: Callable[[str], Any], mountpoints: list[str], pool: WorkerPool) -> None:
        self.calls = [_Call(m) for m in mountpoints]
        self.abandoned = False
        self.job = pool.submit(lambda: self._run(statvfs), "statvfs " + " ".join(mountpoints))

    def _run(self, statvfs: Callable[[str], Any]) -> None:
        for call in self.calls:
            if self.abandoned:
                return
            call.run(statvfs)


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
        self._parts: object = None  # the partition list the cached mounts were made from
        self._mounts: list[tuple[str, str]] = []

    def mounts(self) -> list[tuple[str, str]]:
        """(mountpoint, fstype) of the filesystems this collector looks at, first mount wins.
        Made again only when the source returns a new list (a MountTable returns the same one
        until the mount table changes; psutil a new one every time)."""
        parts = self._ps.disk_partitions(all=True)
        if parts is self._parts:
            return self._mounts
        seen: dict[str, str] = {}
        for part in parts:
            if part.fstype in self._skip_fstypes or self._skip_mountpoints.match(part.mountpoint):
                continue
            seen.setdefault(part.mountpoint, part.fstype)
        self._parts, self._mounts = parts, sorted(seen.items())
        return self._mounts

    def collect(self) -> tuple[Sample, ...]:
        with self._lock:
            samples: list[Sample] = []
            mounts = self.mounts()
            stats = self._stat_all([m for m, _ in mounts if self._may_query(m)])
            for mountpoint, fstype in mounts:
                st = stats.get(mountpoint)
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

    def _may_query(self, mountpoint: str) -> bool:
        """False while an earlier, abandoned statvfs of the mount is still blocked (counted)."""
        previous = self._hung.get(mountpoint)
        if previous is not None:
            if not previous.done.is_set():
                self._timeouts[mountpoint] += 1
                return False
            del self._hung[mountpoint]
            log.info("filesystem %s answers again", mountpoint)
        return True

    def _stat_all(self, mountpoints: list[str]) -> dict[str, Any]:
        """statvfs of each mount (None: failed or timed out), each call bounded by ``timeout``."""
        results: dict[str, Any] = {}
        pending = mountpoints
        while pending:
            batch = _Batch(self._statvfs, pending, self._pool)
            pending = []
            for i, call in enumerate(batch.calls):
                # the call started when the one before it returned, so it gets at least `timeout`
                if not call.done.wait(self._timeout):
                    batch.abandoned = True
                    self._pool.retire(batch.job)  # its thread stays blocked in the kernel
                    self._timed_out(call)
                    pending = [c.mountpoint for c in batch.calls[i + 1 :]]
                    break
                results[call.mountpoint] = self._result(call)
        return results

    def _timed_out(self, call: _Call) -> None:
        mountpoint = call.mountpoint
        self._hung[mountpoint] = call
        self._timeouts[mountpoint] = self._timeouts.get(mountpoint, 0) + 1
        log.warning(
            "filesystem %s did not answer statvfs within %.1fs; skipping it until it does",
            mountpoint, self._timeout,
        )

    def _result(self, call: _Call) -> Any:
        mountpoint = call.mountpoint
        if call.error is not None:
            if mountpoint not in self._failed:
                self._failed.add(mountpoint)
                log.warning("filesystem %s: statvfs failed: %s", mountpoint, call.error)
            return None
        self._failed.discard(mountpoint)
        return call.result
