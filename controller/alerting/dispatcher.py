"""The outbox dispatcher: claim due rows, send them, mark them sent; retry failures with backoff.

Claiming is a short transaction that pushes the row's ``next_attempt_at`` one lease ahead and
counts the attempt (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so several controllers share the work;
SQLite: the write lock serialises claims). Sending happens outside any transaction, one worker
per channel so a slow channel does not hold up the others; then a second short transaction marks
the row ``sent`` (or schedules the retry: exponential backoff with jitter, until ``max_attempts``
or ``max_age``, then ``failed``).

Delivery is at-least-once: a crash after a send and before its mark re-sends the row when the lease
runs out. Every payload carries an idempotency key for receivers to drop that duplicate.
A row marked ``sent`` is never sent again. A channel's repeats of one incident share one timeline
line (updated to the latest), so a long incident's timeline does not grow with its age. Rows of one
incident go to one channel in order (a "resolved" waits for its "firing" while that one is being
retried).

Several controllers (one database): the leader dispatches, and claims stay safe if two ever do —
a claimed row is locked (PostgreSQL) or written under the write lock (SQLite) and leased for
``lease`` seconds, so another dispatcher skips it until the lease runs out.

Grouping (channels in ``grouped``): the due host-level rows (agent down, unreachable) of one client,
channel and event are claimed together and sent as one notification whose payload lists every
incident (``group``); they are marked sent, or retried, together.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from controller.alerting.channels.base import DeliveryError, Outgoing, Sender
from controller.alerting.models import FAILED, PENDING, SENT, Incident, IncidentEvent, Notification
from controller.alerting.routing import groupable
from controller.detection.classify import HOST_KINDS
from controller.redact import Redactor
from controller.store.db import Database

log = logging.getLogger("boxkeeper.notify")


def backoff(
    attempts: int, *, base: float = 5.0, cap: float = 600.0, rng: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempts`` (1-based): base·2^(n-1), capped, with jitter in [½, 1]."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + 0.5 * rng())


def _record(session: Session, note: Outgoing, kind: str, message: str, now: float, *,
            incident_id: int | None = None) -> None:
    """Add the delivery's timeline event. A repeat does not add a line: the channel's one line for
    its repeats (of this kind) is updated to the latest (number, time, text), so a day-long incident
    routed to Alertmanager (a repeat a minute) keeps a short timeline."""
    if note.event == "repeat":
        prefix = f"{note.channel}: repeat"
        line = session.scalars(
            select(IncidentEvent).where(
                IncidentEvent.incident_id == note.incident_id, IncidentEvent.kind == kind,
                IncidentEvent.message.startswith(prefix, autoescape=True),
            ).order_by(IncidentEvent.id.desc()).limit(1)
        ).first()
        number = note.idempotency_key.rsplit(":", 1)[-1]
        message = f"{prefix} #{number} (the latest; one line for all repeats){message[len(prefix):]}"
        if line is not None:
            line.at, line.message = now, message
            return
    session.add(IncidentEvent(incident_id=note.incident_id if incident_id is None else incident_id, at=now,
                              kind=kind, actor="boxkeeper", message=message))


class Dispatcher:
    def __init__(
        self,
        db: Database,
        senders: dict[str, Sender],
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        batch: int = 50,
        lease: float = 120.0,
        max_attempts: int = 12,
        max_age: float = 86400.0,
        base_delay: float = 5.0,
        max_delay: float = 600.0,
        workers: int = 4,
        grouped: frozenset[str] = frozenset(),
        group_limit: int = 1000,
    ) -> None:
        self.db = db
        self.senders = senders
        self.clock = clock
        self.rng = rng
        self.batch = batch
        self.lease = lease
        self.max_attempts = max_attempts
        self.max_age = max_age
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.grouped = grouped
        self.group_limit = group_limit
        #: a grouped note's id → the (row id, incident id) of every row it stands for
        self._members: dict[int, list[tuple[int, int]]] = {}
        self.redact = Redactor(s for sender in senders.values() for s in sender.secrets())
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="boxkeeper-notify")
        self.counts: Counter[tuple[str, str]] = Counter()  # (channel, sent|retry|failed) → n

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for sender in self.senders.values():
            sender.close()

    def claim(self) -> list[Outgoing]:
        now = self.clock()
        with self.db.session() as session:
            earlier = aliased(Notification)
            # in order per (incident, channel): a "resolved" never overtakes its "firing" on retry
            blocked = (
                select(earlier.id)
                .where(
                    earlier.incident_id == Notification.incident_id, earlier.channel == Notification.channel,
                    earlier.status == PENDING, earlier.id < Notification.id,
                )
                .exists()
            )
            due = (Notification.status == PENDING, Notification.next_attempt_at <= now, ~blocked)
            stmt = (
                select(Notification)
                .where(*due)
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            rows = list(session.scalars(stmt).all())
            groups: dict[tuple[str, str, str | None], list[Notification]] = {}
            single: list[Notification] = []
            for row in rows:
                key = self._group_key(row)
                (groups.setdefault(key, []) if key is not None else single).append(row)
            for (channel, event, client), members in groups.items():
                members.extend(self._siblings(session, due, channel, event, client, {r.id for r in members}))
            claimed = []
            for row in [*single, *(r for members in groups.values() for r in members)]:
                row.attempts += 1
                row.next_attempt_at = now + self.lease
            for row in single:
                claimed.append(self._outgoing(row))
            for members in groups.values():
                claimed.append(self._grouped(members))
            return claimed

    def _group_key(self, row: Notification) -> tuple[str, str, str | None] | None:
        incident = row.payload.get("incident") or {}
        if row.channel not in self.grouped or not groupable(str(incident.get("cause")), row.event):
            return None
        return row.channel, row.event, incident.get("client")

    def _siblings(self, session: Session, due: tuple[Any, ...], channel: str, event: str, client: str | None,
                  taken: set[int]) -> list[Notification]:
        """The other due rows of the same group beyond the batch."""
        stmt = (
            select(Notification)
            .join(Incident, Incident.id == Notification.incident_id)
            .where(*due, Notification.channel == channel, Notification.event == event,
                   Incident.client_name == client, Incident.cause.in_(HOST_KINDS))
            .order_by(Notification.id)
            .limit(self.group_limit)
            .with_for_update(skip_locked=True, of=Notification)
        )
        return [row for row in session.scalars(stmt) if row.id not in taken]

    @staticmethod
    def _outgoing(row: Notification) -> Outgoing:
        return Outgoing(row.id, row.incident_id, row.event, row.channel, dict(row.payload), row.dedup_key,
                        row.attempts)

    def _grouped(self, rows: list[Notification]) -> Outgoing:
        """One note for the rows of a group (a single row goes out as itself)."""
        rows.sort(key=lambda r: (str(r.payload["incident"].get("host") or ""), r.id))
        if len(rows) == 1:
            return self._outgoing(rows[0])
        first = rows[0]
        payload = dict(first.payload)
        payload["group"] = [r.payload["incident"] for r in rows]
        key = "group:" + ",".join(str(r.id) for r in sorted(rows, key=lambda r: r.id))
        payload["idempotency_key"] = key
        note = Outgoing(first.id, first.incident_id, first.event, first.channel, payload, key,
                        max(r.attempts for r in rows))
        self._members[first.id] = [(r.id, r.incident_id) for r in rows]
        return note

    def dispatch_once(self) -> int:
        """Send every due row once; the number delivered."""
        claimed = self.claim()
        if not claimed:
            return 0
        by_channel: dict[str, list[Outgoing]] = {}
        for note in claimed:
            by_channel.setdefault(note.channel, []).append(note)
        futures = [self._pool.submit(self._send_all, notes) for notes in by_channel.values()]
        return sum(f.result() for f in futures)

    def _send_all(self, notes: list[Outgoing]) -> int:
        return sum(self._send(note) for note in notes)

    def _send(self, note: Outgoing) -> int:
        sender = self.senders.get(note.channel)
        error: str | None = None
        retry = False
        if sender is None:
            error = f"channel {note.channel!r} is no longer configured"
        else:
            try:
                sender.send(note)
            except DeliveryError as exc:
                error, retry = self.redact(exc), exc.retry
            except Exception as exc:  # a bug in a channel must not stop the others
                error, retry = self.redact(f"{type(exc).__name__}: {exc}"), True
        if error is None:
            self._mark_sent(note)
            return 1
        self._mark_failed(note, error, retry)
        return 0

    def _mark_sent(self, note: Outgoing) -> None:
        now = self.clock()
        members = self._members.pop(note.id, [(note.id, note.incident_id)])
        together = f" (with {len(members) - 1} other host(s) of the client)" if len(members) > 1 else ""
        with self.db.session() as session:
            session.execute(
                update(Notification).where(Notification.id.in_([m[0] for m in members]),
                                           Notification.status == PENDING)
                .values(status=SENT, sent_at=now, last_error=None)
            )
            for _, incident_id in members:
                _record(session, note, "notified", f"{note.channel}: {note.event}{together}", now,
                        incident_id=incident_id)
        self.counts[(note.channel, "sent")] += 1
        log.info("notification %s (%s, incident #%s%s) sent to %s", note.id, note.event, note.incident_id,
                 together, note.channel)

    def _mark_failed(self, note: Outgoing, error: str, retry: bool) -> None:
        now = self.clock()
        members = self._members.pop(note.id, [(note.id, note.incident_id)])
        give_up = False
        delay = backoff(note.attempts, base=self.base_delay, cap=self.max_delay, rng=self.rng)
        with self.db.session() as session:
            for row_id, incident_id in members:
                row = session.get(Notification, row_id)
                if row is None or row.status != PENDING:
                    continue
                give_up = (not retry or row.attempts >= self.max_attempts
                           or now - row.created_at >= self.max_age)
                row.last_error = error[:2000]
                if give_up:
                    row.status = FAILED
                    _record(session, note, "notify_failed", f"{note.channel}: {note.event} failed after "
                            f"{row.attempts} attempt(s): {error[:500]}", now, incident_id=incident_id)
                else:  # one delay for the whole group: its rows stay due together
                    row.next_attempt_at = now + delay
        if give_up:
            self.counts[(note.channel, "failed")] += 1
            log.error("notification %s to %s failed for good: %s", note.id, note.channel, error)
        else:
            self.counts[(note.channel, "retry")] += 1
            log.warning("notification %s to %s failed (attempt %s), will retry: %s", note.id, note.channel,
                        note.attempts, error)
