"""``boxkeeper migrate``: bring the database to the newest schema and add the config's clients and
hosts to it (``serve`` does the same when it starts)."""

from __future__ import annotations

import argparse

from controller import inventory
from controller.cli.common import Cli, open_db


def register(cli: Cli) -> None:
    cli.command("migrate", "apply database migrations and sync the config", cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    inventory.sync_config(cfg, db)
    print(f"database {db!r} is at the newest schema")
    return 0
