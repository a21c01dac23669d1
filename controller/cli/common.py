"""What every ``boxkeeper`` command module shares: its registration shape, the config, the database.

A command module has one function, ``register(cli: Cli) -> None``, that adds its noun (and the
noun's verbs) with :meth:`Cli.command` / :meth:`Cli.group`; ``controller/cli/__init__.py`` lists
the modules, one line each. Every command takes ``--config F`` (default ``$BOXKEEPER_CONFIG``).

Databases: :func:`open_db` (commands that change something) brings the schema up to date first;
:func:`read_db` (commands that only look: ``status``, ``incidents``, ``runs``, ``windows list``
…) never migrates and never writes: on a database that is missing or behind it stops with
"run `boxkeeper migrate`" (exit 1).
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from typing import Any

from controller.config import ControllerConfig, load
from controller.errors import ControllerError
from controller.store.db import Database

CONFIG_ENV = "BOXKEEPER_CONFIG"
Handler = Callable[[argparse.Namespace], int]


class SchemaError(ControllerError):
    """The database is missing or not at the newest schema (a read-only command does not migrate)."""


def add_config_argument(parser: argparse.ArgumentParser, *, subcommand: bool = True) -> None:
    """``--config F`` (default: $BOXKEEPER_CONFIG, else built-in defaults).

    On a subcommand's parser the default is suppressed, so ``boxkeeper --config F hosts list`` and
    ``boxkeeper hosts list --config F`` both work.
    """
    parser.add_argument(
        "--config", "-c", metavar="FILE", default=argparse.SUPPRESS if subcommand else None,
        help=f"controller config file (default: ${CONFIG_ENV})",
    )


class Cli:
    """Adds commands (``boxkeeper NOUN`` or ``boxkeeper NOUN VERB``), each with ``--config``."""

    def __init__(self, subparsers: Any, dest: str = "command", *, prefix: str = "boxkeeper") -> None:
        self._subparsers = subparsers
        self._dest = dest
        self.prefix = prefix

    def command(self, name: str, help: str, handler: Handler | None = None) -> argparse.ArgumentParser:
        """A command; ``handler(args) -> exit code`` runs it."""
        parser: argparse.ArgumentParser = self._subparsers.add_parser(name, help=help, description=help)
        add_config_argument(parser)
        if handler is not None:
            parser.set_defaults(func=handler)
        return parser

    def group(self, name: str, help: str,
              handler: Handler | None = None) -> tuple[argparse.ArgumentParser, Cli]:
        """A noun with verbs (``boxkeeper hosts add``); ``handler`` runs when no verb is given
        (``boxkeeper incidents``), else a verb is required."""
        parser = self.command(name, help, handler)
        verbs = parser.add_subparsers(dest=f"{name}_{self._dest}", required=handler is None, metavar="ACTION")
        return parser, Cli(verbs, dest=self._dest, prefix=f"{self.prefix} {name}")


def config_path(args: argparse.Namespace) -> str | None:
    path = getattr(args, "config", None)
    return str(path) if path else os.environ.get(CONFIG_ENV) or None


def load_config(args: argparse.Namespace) -> ControllerConfig:
    """The config named by ``--config``/``$BOXKEEPER_CONFIG``; raises ConfigError (exit 2)."""
    return load(config_path(args))


_opened: list[Database] = []


def open_db(args: argparse.Namespace) -> tuple[ControllerConfig, Database]:
    """The config and its database, migrated to the newest schema (for commands that write)."""
    cfg = load_config(args)
    db = Database(cfg.database)
    _opened.append(db)
    db.upgrade()
    return cfg, db


def read_db(args: argparse.Namespace) -> tuple[ControllerConfig, Database]:
    """The config and its database for looking only: never created, migrated or written."""
    cfg = load_config(args)
    db = Database(cfg.database, create=False)
    _opened.append(db)
    problem = db.schema_problem()
    if problem is not None:
        raise SchemaError(f"database {db!r}: {problem}; run `boxkeeper migrate`")
    return cfg, db


def close_all() -> None:
    """Dispose every database opened here (``boxkeeper`` calls it before exiting)."""
    while _opened:
        _opened.pop().dispose()


def actor() -> str:
    """Who runs this command, for timelines and audit (``cli:<login>``)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def age(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(now - ts))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def table(rows: list[list[str]]) -> str:
    """Columns padded to the widest cell; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(lines)
