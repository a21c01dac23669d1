"""What every Bitrix signal check shares: its spec's keys (``docroot``, ``site``), the portal's
database (settings read from the docroot, :mod:`agent.bitrix.settings`), labels and wording.

A signal that reads the database and cannot (settings unreadable, MySQL down, a query failing)
is UNKNOWN with the reason — "cannot read the licence date: cannot connect to MySQL at
127.0.0.1:3306: (2003) ..." — never CRITICAL for a signal it could not see, and never "crashed":
the ``mysql`` check (or the profile's ``mysql`` signal) is the one that says the database is down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Optional

from agent.bitrix.settings import PortalDbSettings, SettingsError
from agent.checks.base import CheckResult, CheckSpec
from agent.configtypes import Duration, Name, Text
from agent.mysqlclient import DbError, DbSettings, QueryResult, run_statements
from agent.report import Sample, Status

#: How statements reach the database: ``run_statements`` (PyMySQL); tests pass a fake.
Runner = Callable[[DbSettings, Sequence[str], float], list[QueryResult]]

DEFAULT_SITE = Name("default")


class BitrixSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The keys of every Bitrix signal: the site's docroot and its name (a label on the check's
    series and in its summaries). ``PROFILE_INTERVAL`` is the signal's interval when the
    ``bitrix:`` profile expands it and the site item gives none (in ``checks:`` the config's
    ``interval`` applies, as to every check)."""

    docroot: Text
    site: Name = DEFAULT_SITE

    PROFILE_INTERVAL: ClassVar[Duration] = Duration(60.0)


class PortalUnreadable(Exception):
    """The portal's database could not be read; the message says why (never the password)."""


@dataclass(frozen=True)
class Portal:
    """One site's database, as its own settings files say."""

    site: str
    docroot: str
    db: PortalDbSettings
    runner: Runner = run_statements

    @classmethod
    def of(cls, spec: BitrixSpec, runner: Runner = run_statements) -> Portal:
        return cls(str(spec.site), str(spec.docroot), PortalDbSettings(spec.docroot), runner)

    @property
    def labels(self) -> dict[str, str]:
        return {"site": self.site}

    def query(self, statements: Sequence[str], timeout: float) -> list[QueryResult]:
        """Run ``statements`` on the portal's database. Raises :class:`PortalUnreadable`."""
        try:
            settings = self.db.get()
        except SettingsError as exc:
            raise PortalUnreadable(str(exc)) from None
        try:
            return self.runner(settings, statements, timeout)
        except DbError as exc:
            where = f" (settings from {settings.source})" if exc.kind in ("connect", "auth") else ""
            raise PortalUnreadable(f"{exc}{where}") from None

    def sample(self, name: str, value: float, kind: str = "gauge") -> Sample:
        return Sample(name, float(value), "counter" if kind == "counter" else "gauge", self.labels)


def unreadable(what: str, exc: PortalUnreadable) -> CheckResult:
    """UNKNOWN: the signal could not be read, and why."""
    return CheckResult(Status.UNKNOWN, f"cannot read {what}: {exc}")


def ago(seconds: float) -> str:
    """``40`` → ``40 s``, ``1380`` → ``23 min``, ``7500`` → ``2 h 5 min``, ``200000`` → ``2 days 7 h``."""
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    hours, rem = divmod(s, 3600)
    if hours < 48:
        minutes = rem // 60
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def span(seconds: float) -> str:
    """A configured duration as set: ``3600`` → ``1 h``, ``93600`` → ``26 h``, ``900`` → ``15 min``."""
    s = int(seconds)
    if s % 3600 == 0:
        return f"{s // 3600} h"
    if s % 60 == 0:
        return f"{s // 60} min"
    return f"{s} s"


def cell(result: QueryResult, row: int = 0, column: int = 0) -> object:
    """One value of a result (None when the row or column is not there)."""
    if row < len(result.rows) and column < len(result.rows[row]):
        return result.rows[row][column]
    return None


def as_int(value: object) -> Optional[int]:
    """A cell as an int (SUM() and TIMESTAMPDIFF() come back as Decimal or int); None for NULL."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return int(value)
    try:
        return int(float(value.decode() if isinstance(value, bytes) else str(value)))
    except ValueError:
        return None
