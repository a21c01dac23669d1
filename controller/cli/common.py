"""Helpers shared by every ``boxkeeper`` subcommand (core and incidents): config + database."""

from __future__ import annotations

import argparse
import os

from controller.config import ControllerConfig, load
from controller.store.db import Database

CONFIG_ENV = "BOXKEEPER_CONFIG"


def add_config_argument(parser: argparse.ArgumentParser, *, subcommand: bool = True) -> None:
    """``--config F`` (default: $BOXKEEPER_CONFIG, else built-in defaults).

    On a subcommand's parser the default is suppressed, so ``boxkeeper --config F hosts list`` and
    ``boxkeeper hosts list --config F`` both work.
    """
    parser.add_argument(
        "--config", "-c", metavar="FILE", default=argparse.SUPPRESS if subcommand else None,
        help=f"controller config file (default: ${CONFIG_ENV})",
    )


def config_path(args: argparse.Namespace) -> str | None:
    path = getattr(args, "config", None)
    return str(path) if path else os.environ.get(CONFIG_ENV) or None


def load_config(args: argparse.Namespace) -> ControllerConfig:
    """The config named by ``--config``/``$BOXKEEPER_CONFIG``; raises ConfigError (exit 2)."""
    return load(config_path(args))


def open_db(args: argparse.Namespace, *, upgrade: bool = True) -> tuple[ControllerConfig, Database]:
    """Load the config and open its database, migrated to the newest schema (by default)."""
    cfg = load_config(args)
    db = Database(cfg.database)
    _opened.append(db)
    if upgrade:
        db.upgrade()
    return cfg, db


_opened: list[Database] = []


def close_all() -> None:
    """Dispose every database opened by :func:`open_db` (``boxkeeper`` calls it before exiting)."""
    while _opened:
        _opened.pop().dispose()
