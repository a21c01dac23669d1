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
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from controller.alerting.channels.base import DeliveryError, Outgoing, Sender
from controller.alerting.models import FAILED, PENDING, SENT, IncidentEvent, Notification
from controller.redact import Redactor
from controller.store.db import Database

log = logging.getLogger("boxkeeper.notify")


def backoff(
    attempts: int, *, base: float = 5.0, cap: float = 600.0, rng: Callable[[], float] = random.random
) -> float:
    """Delay before retry number ``attempts`` (1-based): base·2^(n-1), capped, with jitter in [½, 1]."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + 0.5 * rng())


def _record(session: Session, note: Outgoing, kind: str, message: str, now: float) -> None:
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
    session.add(IncidentEvent(incident_id=note.incident_id, at=now, kind=kind, actor="boxkeeper",
                              message=message))


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
            stmt = (
                select(Notification)
                .where(Notification.status == PENDING, Notification.next_attempt_at <= now, ~blocked)
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            rows = session.scalars(stmt).all()
            claimed = []
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + self.lease
                claimed.append(Outgoing(row.id, row.incident_id, row.event, row.channel, dict(row.payload),
                                        row.dedup_key, row.attempts))
            return claimed

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
        with self.db.session() as session:
            session.execute(
                update(Notification).where(Notification.id == note.id, Notification.status == PENDING)
                .values(status=SENT, sent_at=now, last_error=None)
            )
            _record(session, note, "notified", f"{note.channel}: {note.event}", now)
        self.counts[(note.channel, "sent")] += 1
        log.info("notification %s (%s, incident #%s) sent to %s", note.id, note.event, note.incident_id,
                 note.channel)

    def _mark_failed(self, note: Outgoing, error: str, retry: bool) -> None:
        now = self.clock()
        with self.db.session() as session:
            row = session.get(Notification, note.id)
            if row is None or row.status != PENDING:
                return
            give_up = not retry or row.attempts >= self.max_attempts or now - row.created_at >= self.max_age
            row.last_error = error[:2000]
            if give_up:
                row.status = FAILED
                _record(session, note, "notify_failed", f"{note.channel}: {note.event} failed after "
                        f"{row.attempts} attempt(s): {error[:500]}", now)
            else:
                row.next_attempt_at = now + backoff(row.attempts, base=self.base_delay, cap=self.max_delay,
                                                    rng=self.rng)
        if give_up:
            self.counts[(note.channel, "failed")] += 1
            log.error("notification %s to %s failed for good: %s", note.id, note.channel, error)
        else:
            self.counts[(note.channel, "retry")] += 1
            log.warning("notification %s to %s failed (attempt %s), will retry: %s", note.id, note.channel,
                        note.attempts, error)
