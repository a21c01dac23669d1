"""``onec_infobase`` check: one infobase's sessions and locks, as the cluster reports them.

Each run asks rac (``cluster list``; ``infobase summary list`` for the infobase's id; ``session
list --infobase``; ``infobase info``) and judges:

- **sessions by application** (``app-id``: 1CV8C thin client, WebClient, Designer, BackgroundJob …):
  counted, in the summary and as series; not judged;
- **blocked sessions** (``blocked-by-dbms`` or ``blocked-by-ls`` non-zero): at or above
  ``blocked_warning`` (1) → WARNING, ``blocked_critical`` (unset) → CRITICAL;
- **sessions-deny / scheduled-jobs-deny on** outside an update run → WARNING, saying since when
  (the first run that saw it on; kept in the agent's ``state_dir`` across restarts). An update run
  says it is running with its marker file (``update_marker``, :mod:`agent.checks.onec.marker`); while the
  marker is there (and younger than ``update_max_age``) the locks are OK;
- the infobase not registered in the cluster → CRITICAL; the cluster not answering → UNKNOWN (the
  ``onec_cluster`` check says CRITICAL).

``infobase info`` needs the infobase's user and password when the infobase has users, and rac takes
the password only in its command line (``--infobase-pwd``). The check passes it only when the
config says ``password_in_argv: true`` beside ``infobase_user`` and ``infobase_password_file`` (one
line, mode 0600); otherwise it asks without credentials, and on "Недостаточно прав" the locks are
UNKNOWN with that reason while sessions are still judged.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from agent.checks.base import CheckResult, FromSpec, Resources
from agent.checks.bitrix.portal import ago, span
from agent.checks.onec.common import Deadline, RacSpec, cannot_ask, rac_of
from agent.checks.onec.marker import DEFAULT_MARKER, marker_path, read_marker
from agent.checks.onec.rac import Rac, RacError
from agent.configtypes import Count, Duration, Text
from agent.errors import SecretFileError, SpecError
from agent.report import PerfValue, Sample, Status
from agent.token import read_secret_file

METRICS = {
    "boxkeeper_onec_sessions": "Sessions of a 1C infobase by application (rac session list, app-id).",
    "boxkeeper_onec_sessions_blocked": "Sessions of a 1C infobase blocked by the DBMS or by a managed lock.",
    "boxkeeper_onec_deny": "1 when a 1C infobase's sessions-deny or scheduled-jobs-deny is on (lock label).",
    "boxkeeper_onec_deny_age_seconds":
        "How long a 1C infobase's sessions-deny or scheduled-jobs-deny has been seen on (0 when off).",
    "boxkeeper_onec_update_running": "1 while an update run's marker file for the infobase is there.",
}
LOCKS = ("sessions-deny", "scheduled-jobs-deny")


class OnecInfobaseSpec(RacSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["onec_infobase"] = "onec_infobase"
    infobase: Text
    infobase_user: Optional[Text] = None
    infobase_password_file: Optional[Path] = None
    password_in_argv: bool = False
    blocked_warning: Optional[Count] = Count(1)
    blocked_critical: Optional[Count] = None
    update_marker: Text = Text(DEFAULT_MARKER)
    update_max_age: Duration = Duration(12 * 3600.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.infobase_password_file is not None and self.infobase_user is None:
            raise SpecError("infobase_user", "the infobase user whose password infobase_password_file holds")
        if self.infobase_password_file is not None and not self.password_in_argv:
            raise SpecError("password_in_argv",
                            "true to accept that rac gets the infobase password in its command line (rac "
                            "takes it no other way; visible in the process table while rac runs unless /proc "
                            "is mounted with hidepid; docs/agent-checks.md), or no infobase_password_file")
        lo, hi = self.blocked_warning, self.blocked_critical
        if lo is not None and hi is not None and lo > hi:
            raise SpecError("blocked_warning", "a value not above blocked_critical")


class FirstSeen:
    """When each lock was first seen on, in memory and in one small JSON file in the agent's
    ``state_dir`` (written atomically), so a restart does not reset "on since"."""

    def __init__(self, path: Optional[Path], save: bool) -> None:
        self.path = path
        self.save = save
        self.lock = threading.Lock()
        self.since: Optional[dict[str, float]] = None

    def _load(self) -> dict[str, float]:
        if self.since is None:
            self.since = {}
            if self.path is not None:
                with contextlib.suppress(OSError, ValueError):
                    raw = json.loads(self.path.read_text())
                    self.since = {str(k): float(v) for k, v in raw.items() if k in LOCKS}
        return self.since

    def update(self, on: dict[str, bool], now: float) -> dict[str, float]:
        """The first-seen time of each lock that is on now (a lock that is off is forgotten)."""
        with self.lock:
            since = self._load()
            new = {lock: since.get(lock, now) for lock, is_on in on.items() if is_on}
            if new != since:
                self.since = new
                self._write(new)
            return dict(new)

    def _write(self, data: dict[str, float]) -> None:
        if self.path is None or not self.save:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class OnecInfobaseCheck(FromSpec):
    spec: OnecInfobaseSpec
    rac: Rac
    first_seen: FirstSeen
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        ib_name = str(spec.infobase)
        deadline = Deadline(timeout * 0.9)
        try:
            cluster = self.rac.cluster(deadline.left(), spec.cluster)
            listed = self.rac.run(["infobase", f"--cluster={cluster}", "summary", "list"], deadline.left())
        except RacError as exc:
            return cannot_ask(exc)
        ib = next((r for r in listed if r.get("name") == ib_name or r.get("infobase") == ib_name), None)
        if ib is None:
            names = ", ".join(r.get("name", "?") for r in listed) or "none"
            return CheckResult(Status.CRITICAL, f"infobase {ib_name} is not registered in the 1C cluster "
                                                f"(infobases: {names})")
        uuid = ib.get("infobase", "")
        try:
            sessions = self.rac.run(["session", f"--cluster={cluster}", "list", f"--infobase={uuid}"],
                                    deadline.left())
        except RacError as exc:
            return cannot_ask(exc)
        labels = {"check": self.name, "infobase": ib_name}
        apps = Counter(s.get("app-id", "?") or "?" for s in sessions)
        blocked = sum(1 for s in sessions
                      if _nonzero(s.get("blocked-by-dbms")) or _nonzero(s.get("blocked-by-ls")))
        samples = [Sample("boxkeeper_onec_sessions", float(n), "gauge", {**labels, "app": app})
                   for app, n in sorted(apps.items())]
        samples.append(Sample("boxkeeper_onec_sessions_blocked", float(blocked), "gauge", labels))
        perf = [PerfValue("sessions", float(len(sessions)), "", min=0.0),
                PerfValue("blocked", float(blocked), "", _f(spec.blocked_warning), _f(spec.blocked_critical),
                          0.0)]
        status = Status.OK
        problems: list[str] = []
        if spec.blocked_critical is not None and blocked >= spec.blocked_critical:
            status = Status.CRITICAL
            problems.append(f"{blocked} blocked (at or above {spec.blocked_critical})")
        elif spec.blocked_warning is not None and blocked >= spec.blocked_warning:
            status = Status.WARNING
            problems.append(f"{blocked} blocked (at or above {spec.blocked_warning})")
        by_app = ", ".join(f"{app} {n}" for app, n in sorted(apps.items()))
        summary = f"infobase {ib_name}: {len(sessions)} sessions" + (f" ({by_app})" if by_app else "")

        lock_status, lock_text, lock_samples = self._locks(cluster, uuid, ib_name, labels, deadline)
        samples += lock_samples
        if lock_status.severity > status.severity:
            status = lock_status
        if lock_text:
            problems.append(lock_text)
        if problems:
            summary += "; " + "; ".join(problems)
        return CheckResult(status, summary, tuple(perf), samples=tuple(samples))

    def _locks(self, cluster: str, uuid: str, ib_name: str, labels: dict[str, str],
               deadline: Deadline) -> tuple[Status, str, list[Sample]]:
        spec = self.spec
        secret: list[str] = []
        words = ["infobase", f"--cluster={cluster}", "info", f"--infobase={uuid}"]
        if spec.infobase_user is not None:
            words.append(f"--infobase-user={spec.infobase_user}")
        if spec.infobase_password_file is not None:
            try:
                password = read_secret_file(spec.infobase_password_file, what="password file",
                                            missing_hint=f"put the infobase user's password there and run: "
                                                         f"chmod 600 {spec.infobase_password_file}")
            except SecretFileError as exc:
                return Status.UNKNOWN, f"locks not known: {exc}", []
            secret.append(f"--infobase-pwd={password.split(chr(10), 1)[0].rstrip(chr(13))}")
        try:
            (info, *_) = self.rac.run(words, deadline.left(), secret_options=secret) or [{}]
        except RacError as exc:
            hint = ""
            if exc.kind == "no_rights":
                hint = (" (give infobase_user, infobase_password_file and password_in_argv: true"
                        if spec.infobase_password_file is None else " (check infobase_user and its password")
                hint += "; docs/agent-checks.md)"
            return Status.UNKNOWN, f"locks not known: {exc}{hint}", []
        now = self.clock()
        on = {lock: info.get(lock, "off").strip().lower() == "on" for lock in LOCKS}
        since = self.first_seen.update(on, now)
        marker = read_marker(marker_path(str(spec.update_marker), ib_name), now)
        running = marker is not None and marker.age <= spec.update_max_age
        samples = [Sample("boxkeeper_onec_update_running", 1.0 if running else 0.0, "gauge", labels)]
        for lock in LOCKS:
            lock_labels = {**labels, "lock": lock}
            samples += [Sample("boxkeeper_onec_deny", 1.0 if on[lock] else 0.0, "gauge", lock_labels),
                        Sample("boxkeeper_onec_deny_age_seconds",
                               round(now - since[lock], 3) if lock in since else 0.0, "gauge", lock_labels)]
        locked = [lock for lock in LOCKS if on[lock]]
        if not locked:
            return Status.OK, "", samples
        described = ", ".join(f"{lock} on for {ago(now - since[lock])}" for lock in locked)
        if running and marker is not None:
            return (Status.OK, f"{described}: an update run is in progress ({marker.path}, {ago(marker.age)} "
                               "old)", samples)
        stale = ""
        if marker is not None:
            stale = (f"; the update marker {marker.path} is {ago(marker.age)} old (over "
                     f"{span(spec.update_max_age)}: left behind?)")
        return Status.WARNING, f"{described}, outside an update run{stale}", samples


def _nonzero(value: Optional[str]) -> bool:
    return (value or "0").strip() not in ("0", "", "no", "false")


def _f(value: Optional[int]) -> Optional[float]:
    return None if value is None else float(value)


def build(spec: OnecInfobaseSpec, resources: Resources) -> OnecInfobaseCheck:
    path = None if resources.state_dir is None else resources.state_dir / f"onec-infobase-{spec.name}.json"
    return OnecInfobaseCheck(spec, rac_of(spec), FirstSeen(path, resources.save_state))
