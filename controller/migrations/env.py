"""Alembic environment: the metadata of every model module (core and incidents) on one Base."""

from __future__ import annotations

import contextlib
import importlib

from alembic import context
from sqlalchemy import Connection, create_engine

import controller.store.history  # (the history summaries)
import controller.store.models  # noqa: F401  (registers the core tables on Base.metadata)
from controller.store.base import Base

# The incidents side's tables, when that package is installed.
for _module in ("controller.alerting.models", "controller.workflows.models",
                "controller.workflows.rollout_models", "controller.reports.models",
                "controller.ui.models", "controller.workflows.releases",
                "controller.workflows.later", "controller.workflows.window_changes"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)

target_metadata = Base.metadata
config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


def _run(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; run `boxkeeper migrate`")
run_migrations_online()
