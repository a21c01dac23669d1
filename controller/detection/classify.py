"""Classification: from a host's checks, liveness and probe results to the causes that should be open.

Pure functions of values; the database work (open/resolve/notify) is in
:mod:`controller.alerting.reconcile`.

Rules (DESIGN.md "Outage detection"):

============================================  =====================  ==========================
situation                                     incident kind / key    severity
============================================  =====================  ==========================
agent silent, every configured probe fails    ``unreachable``        critical
agent silent, at least one probe answers      ``agent_down``         ``agent_down_severity``
agent silent, no probe configured             ``agent_down``         ``agent_down_severity``
agent alive, check hard CRITICAL              ``check`` (per check)  critical  ("portal down: …")
agent alive, check hard WARNING               ``check`` (per check)  warning (if warning_incidents)
agent alive, check flapping                   ``flapping``           warning (holds a worse one)
============================================  =====================  ==========================

While the agent is silent its check states are stale: check incidents are *held* (neither opened
nor resolved). The same while the agent replays its spool (``replaying``: the newest report was sent
long before it arrived): those states have already ended, they update history but page nobody.
During the start-up grace after a controller outage (``starting``) a silent host is not declared
down yet (its host-level incidents are held): its agent may still be retrying. While probes are
still running the host-level incidents are held too. A soft or UNKNOWN check state holds its
incident (no page on a retry, no resolve on a timeout).
A host-level cause *inhibits* the host's check incidents: they are recorded but not notified.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from controller.detection.config import DetectionConfig
from controller.detection.probes import ProbeResult

CRITICAL, WARNING, OK, UNKNOWN = 2, 1, 0, 3
HOST_KINDS = ("unreachable", "agent_down")
CHECK_KINDS = ("check", "flapping")
DETECTED_KINDS = HOST_KINDS + CHECK_KINDS


class CheckLike(Protocol):
    """What classification needs of a check state (a ``CheckState`` row or a fleet ``CheckView`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def status(self) -> int: ...

    @property
    def hard(self) -> bool: ...

    @property
    def flapping(self) -> bool: ...

    @property
    def summary(self) -> str: ...


@dataclass(frozen=True)
class Cause:
    """Something that should have an open incident now."""

    key: str
    kind: str
    severity: str
    summary: str
    check: str | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class HostView:
    """Everything classification knows about one host at one moment."""

    host: str
    client: str | None
    reported: bool  # has the host ever reported?
    silent: bool
    silent_for: float | None
    probes: tuple[ProbeResult, ...] | None  # None: probes still running; (): none configured
    checks: tuple[CheckLike, ...] = ()
    probes_disabled: bool = False
    replaying: bool = False  # the newest report is an old one replayed from the agent's spool
    starting: bool = False  # within the start-up grace after a controller outage


@dataclass(frozen=True)
class Evaluation:
    host: str
    causes: tuple[Cause, ...]
    held_keys: frozenset[str]  # open incidents with these keys stay as they are
    hold_checks: bool  # every check incident of the host stays as it is
    hold_host: bool  # host-level incidents stay as they are (probes pending)
    inhibited_by: str | None  # key of the host-level cause that inhibits check notifications


def host_key(host: str, kind: str) -> str:
    return f"{host}:{kind}"


def check_key(host: str, check: str) -> str:
    return f"{host}:check:{check}"


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _silence(view: HostView) -> str:
    if view.silent_for is None:
        return "agent never reported"
    return f"no report for {view.silent_for:.0f} s"


def host_cause(view: HostView, cfg: DetectionConfig) -> Cause | None:
    """The host-level cause of a silent host (None while its probes are still running)."""
    if view.probes is None:
        return None
    details: dict[str, object] = {
        "silent_for": view.silent_for,
        "probes": [{"kind": p.kind, "target": p.target, "ok": p.ok, "detail": p.detail} for p in view.probes],
    }
    if not view.probes:
        why = "probes disabled" if view.probes_disabled else "no probe configured (ssh address or portal_url)"
        return Cause(
            host_key(view.host, "agent_down"), "agent_down", cfg.agent_down_severity,
            f"agent down on {view.host}: {_silence(view)}; {why}, "
            "cannot tell agent down from host unreachable",
            details=details,
        )
    if all(not p.ok for p in view.probes):
        failed = "; ".join(_short(p.detail, 120) for p in view.probes)
        return Cause(
            host_key(view.host, "unreachable"), "unreachable", "critical",
            f"host {view.host} unreachable: {_silence(view)}; probes fail: {failed}", details=details,
        )
    answered = ", ".join(p.detail for p in view.probes if p.ok)
    return Cause(
        host_key(view.host, "agent_down"), "agent_down", cfg.agent_down_severity,
        f"agent down on {view.host}: {_silence(view)}; host answers ({answered})", details=details,
    )


def check_cause(host: str, check: CheckLike, cfg: DetectionConfig) -> tuple[Cause | None, bool]:
    """(cause, hold) for one check of a live agent."""
    key = check_key(host, check.name)
    summary = _short(check.summary)
    if check.flapping:
        return Cause(key, "flapping", "warning", f"{check.name} is flapping: {summary}", check.name), False
    if not check.hard or check.status == UNKNOWN:
        return None, check.status != OK
    if check.status == CRITICAL:
        return Cause(key, "check", "critical", f"{check.name} down: {summary}", check.name), False
    if check.status == WARNING and cfg.warning_incidents:
        return Cause(key, "check", "warning", f"{check.name} warning: {summary}", check.name), False
    return None, False


def evaluate(view: HostView, cfg: DetectionConfig) -> Evaluation:
    """The causes that should be open for a host, and what to leave alone."""
    if view.silent and view.starting:
        return Evaluation(view.host, (), frozenset(), hold_checks=True, hold_host=True, inhibited_by=None)
    if view.silent:
        cause = host_cause(view, cfg)
        return Evaluation(
            view.host, () if cause is None else (cause,), frozenset(), hold_checks=True,
            hold_host=cause is None, inhibited_by=None if cause is None else cause.key,
        )
    if view.replaying:
        return Evaluation(view.host, (), frozenset(), hold_checks=True, hold_host=False, inhibited_by=None)
    causes: list[Cause] = []
    held: set[str] = set()
    for check in view.checks:
        cause, hold = check_cause(view.host, check, cfg)
        if cause is not None:
            causes.append(cause)
        elif hold:
            held.add(check_key(view.host, check.name))
    return Evaluation(
        view.host, tuple(causes), frozenset(held), hold_checks=not view.reported, hold_host=False,
        inhibited_by=None,
    )


def host_state(
    *,
    checks: Iterable[CheckLike],
    reported: bool,
    silent: bool,
    open_kinds: Iterable[str] = (),
    probes: tuple[ProbeResult, ...] | None = None,
    muted: bool = False,
) -> str:
    """One word for ``boxkeeper status``: ok, warning, critical, agent_down, unreachable, unknown,
    maintenance (maintenance wins while it lasts)."""
    if muted:
        return "maintenance"
    if silent:
        if "unreachable" in set(open_kinds) or (probes and all(not p.ok for p in probes)):
            return "unreachable"
        return "agent_down"
    if not reported:
        return "unknown"
    statuses = [c.status for c in checks]
    if CRITICAL in statuses:
        return "critical"
    if WARNING in statuses or UNKNOWN in statuses:
        return "warning"
    return "ok"
