"""``bitrix_backup``: is there a recent good backup, and can the next one be written?

Evidence of the last backup, from two places:

- archives in ``archive_dir`` (bitrix-env's ``/home/bitrix/backup/archive``) and in
  ``<docroot>/bitrix/backup`` (the portal's built-in backup): regular files named like archives
  (``.tar``, ``.tar.gz``, ``.tgz``, ``.gz``, ``.zip``, ``.enc``, ``.sql`` …, volumes ``.1``,
  ``.2`` … counted with their archive); the newest one's age and size, and its size against the
  previous one's;
- ``b_event_log`` ``AUDIT_TYPE_ID`` ``BACKUP_SUCCESS`` / ``BACKUP_ERROR`` (the portal's own backup
  logs them; bitrix-env's cron backup does not, as far as is known [unverified]).

Judged:

- no archive and no BACKUP_SUCCESS newer than ``max_age`` (26 h) → CRITICAL;
- a BACKUP_ERROR newer than the newest BACKUP_SUCCESS → CRITICAL ("the last backup failed");
- ``archive_dir``'s filesystem at or above ``dir_full`` (95 %) used → CRITICAL (the next backup
  cannot be written); less free space than the newest archive's size → WARNING;
- the newest archive more than ``max_size_drop`` (50 %) smaller than the previous one → WARNING;
- ``<docroot>/bitrix/backup/auto_lock`` older than ``lock_max_age`` (24 h) → WARNING (a backup
  died midway and its lock stops the next ones).

When the database cannot be read the files still count (and the reason is said); when neither
can be read the check is UNKNOWN. Not done here: ``gzip -t`` of the archive (reading gigabytes
every 10 minutes is not a monitoring check's job; the update playbook tests its own backup).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import BitrixSpec, Portal, PortalUnreadable, ago, as_int, span
from agent.checks.file_age import size_text
from agent.configtypes import Duration, Percent, Text
from agent.report import PerfValue, Sample, Status

ARCHIVE_RE = re.compile(r"\.(tar|tgz|gz|bz2|xz|zst|zip|enc|sql|7z)(\.\d+)?$", re.IGNORECASE)
VOLUME_RE = re.compile(r"\.\d+$")
QUERY = (
    "SELECT AUDIT_TYPE_ID, TIMESTAMPDIFF(SECOND, MAX(TIMESTAMP_X), NOW()) FROM b_event_log "
    "WHERE AUDIT_TYPE_ID IN ('BACKUP_SUCCESS', 'BACKUP_ERROR') GROUP BY AUDIT_TYPE_ID"
)
PORTAL_BACKUP_DIR = "bitrix/backup"
LOCK = "bitrix/backup/auto_lock"

METRICS = {
    "boxkeeper_bitrix_backup_age_seconds": "Age of the newest evidence of a successful Bitrix backup "
                                           "(archive or b_event_log BACKUP_SUCCESS).",
    "boxkeeper_bitrix_backup_size_bytes": "Size of the newest Bitrix backup archive (all its volumes).",
}


class BackupSpec(BitrixSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["bitrix_backup"] = "bitrix_backup"
    archive_dir: Text = Text("/home/bitrix/backup/archive")
    max_age: Duration = Duration(26 * 3600.0)
    max_size_drop: Percent = Percent(50)
    lock_max_age: Duration = Duration(24 * 3600.0)
    dir_full: Percent = Percent(95)

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(600.0)


@dataclass(frozen=True)
class Archive:
    path: str  # of its first volume (or the file itself)
    size: int  # all volumes
    mtime: float


def archives(directory: str) -> tuple[list[Archive], Optional[str]]:
    """The archives in ``directory``, newest first, and a problem reading it (None: read, or absent)."""
    groups: dict[str, list[os.stat_result]] = {}
    names: dict[str, str] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not ARCHIVE_RE.search(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                if not entry.is_file():
                    continue
                key = VOLUME_RE.sub("", entry.name)
                groups.setdefault(key, []).append(st)
                if key not in names or entry.name < names[key]:
                    names[key] = entry.name
    except FileNotFoundError:
        return [], None
    except OSError as exc:
        return [], f"cannot read {directory}: {exc.strerror or exc}"
    found = [Archive(os.path.join(directory, names[key]), sum(s.st_size for s in stats),
                     max(s.st_mtime for s in stats)) for key, stats in groups.items()]
    return sorted(found, key=lambda a: (a.mtime, a.path), reverse=True), None


def used_percent(path: str) -> Optional[tuple[float, int]]:
    """(used % like df, bytes available to the portal's user) of the filesystem holding ``path``."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    if used + avail <= 0:
        return None
    return 100.0 * used / (used + avail), avail


@dataclass(frozen=True)
class BackupCheck(FromSpec):
    spec: BackupSpec
    portal: Portal
    wall: Callable[[], float] = time.time

    def run(self, timeout: float) -> CheckResult:
        spec, portal = self.spec, self.portal
        now = self.wall()
        dirs = [str(spec.archive_dir), os.path.join(portal.docroot, PORTAL_BACKUP_DIR)]
        found: list[Archive] = []
        notes: list[str] = []
        for directory in dirs:
            got, problem = archives(directory)
            found += got
            if problem:
                notes.append(problem)
        found.sort(key=lambda a: (a.mtime, a.path), reverse=True)
        success_age = error_age = None
        db_read = True
        try:
            (events,) = portal.query((QUERY,), timeout)
            for row in events.rows:
                kind = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
                age = as_int(row[1])
                if kind == "BACKUP_SUCCESS":
                    success_age = age
                elif kind == "BACKUP_ERROR":
                    error_age = age
        except PortalUnreadable as exc:
            db_read = False
            notes.append(f"b_event_log not read: {exc}")

        newest = found[0] if found else None
        archive_age = max(now - newest.mtime, 0.0) if newest else None
        ages = [float(a) for a in (archive_age, success_age) if a is not None]
        freshest = min(ages) if ages else None

        status, problems, facts = Status.OK, [], []
        if newest is not None:
            facts.append(f"newest archive {os.path.basename(newest.path)} {ago(archive_age or 0)} old, "
                         f"{size_text(newest.size)}")
        else:
            facts.append(f"no archive in {' or '.join(dirs)}")
        if success_age is not None:
            facts.append(f"last BACKUP_SUCCESS {ago(success_age)} ago")
        elif db_read:
            facts.append("no BACKUP_SUCCESS in b_event_log")

        def worse(level: Status, text: str) -> None:
            nonlocal status
            problems.append(text)
            if level.severity > status.severity:
                status = level

        if freshest is None:
            if not db_read or any(note.startswith("cannot read") for note in notes):
                worse(Status.UNKNOWN, "no evidence of a backup could be read")
            else:
                worse(Status.CRITICAL, "no backup found")
        elif freshest > spec.max_age:
            worse(Status.CRITICAL, f"no successful backup in {span(spec.max_age)}")
        if error_age is not None and (success_age is None or error_age < success_age):
            worse(Status.CRITICAL,
                  f"the last backup failed (BACKUP_ERROR in b_event_log {ago(error_age)} ago)")
        usage = used_percent(str(spec.archive_dir)) if os.path.isdir(spec.archive_dir) else None
        if usage is not None:
            used, avail = usage
            if used >= spec.dir_full:
                worse(Status.CRITICAL, f"backup dir {spec.archive_dir} is full ({used:.0f}% used, "
                                       f"{size_text(avail)} free): the next backup cannot be written")
            elif newest is not None and avail < newest.size:
                worse(Status.WARNING, f"only {size_text(avail)} free in {spec.archive_dir}: the next archive "
                                      f"(~{size_text(newest.size)}) will not fit")
        if len(found) > 1 and found[1].size > 0:
            drop = 100.0 * (found[1].size - found[0].size) / found[1].size
            if drop > spec.max_size_drop:
                worse(Status.WARNING, f"the newest archive is {drop:.0f}% smaller than the previous one "
                                      f"({size_text(found[0].size)} against {size_text(found[1].size)})")
        try:
            lock_age = now - os.stat(os.path.join(portal.docroot, LOCK)).st_mtime
        except OSError:
            lock_age = None
        if lock_age is not None and lock_age > spec.lock_max_age:
            worse(Status.WARNING, f"{LOCK} is {ago(lock_age)} old: a backup stopped midway and its lock "
                                  "holds the next ones back")

        head = f"Bitrix backups of site {portal.site}"
        summary = f"{head}: " + "; ".join(problems + facts) if problems else f"{head}: " + "; ".join(facts)
        if notes:
            summary += f" ({'; '.join(notes)})"
        perf: list[PerfValue] = []
        samples: list[Sample] = []
        if freshest is not None:
            perf.append(PerfValue("age", round(freshest, 3), "s", None, float(spec.max_age), 0.0))
            samples.append(portal.sample("boxkeeper_bitrix_backup_age_seconds", round(freshest, 3)))
        if newest is not None:
            perf.append(PerfValue("size", float(newest.size), "B", min=0.0))
            samples.append(portal.sample("boxkeeper_bitrix_backup_size_bytes", newest.size))
        return CheckResult(status, summary, tuple(perf), samples=tuple(samples))


def build(spec: BackupSpec, resources: Resources) -> BackupCheck:
    return BackupCheck(spec, Portal.of(spec))
