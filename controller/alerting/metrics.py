"""Prometheus view of the outbox: ``boxkeeper_notifications{channel,status}`` (rows by status:
pending, sent, failed) and ``boxkeeper_notifications_oldest_pending_age_seconds`` (how late the
oldest undelivered one is). Register on the app's registry: ``registry.register(NotificationCollector(db))``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from controller.alerting.models import PENDING, Notification
from controller.alerting.queries import outbox_counts
from controller.store.db import Database


class NotificationCollector(Collector):
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        with self.db.read_session() as session:
            counts = outbox_counts(session)
            oldest = session.scalar(
                select(func.min(Notification.created_at)).where(Notification.status == PENDING)
            )
        rows = GaugeMetricFamily("boxkeeper_notifications", "Outbox rows by channel and status.",
                                 labels=["channel", "status"])
        for (channel, status), n in sorted(counts.items()):
            rows.add_metric([channel, status], float(n))
        age = GaugeMetricFamily("boxkeeper_notifications_oldest_pending_age_seconds",
                                "Age of the oldest notification not yet delivered (0 when none).")
        age.add_metric([], max(0.0, self.clock() - oldest) if oldest is not None else 0.0)
        yield from (rows, age)
