"""A controller app on a real uvicorn server with two hosts and one operator (shared by API tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller import inventory, operators
from controller.api import create_app
from controller.api.reports import IngestFastPath
from controller.config import ControllerConfig, parse
from controller.store.db import Database


@dataclass
class Api:
    url: str
    cfg: ControllerConfig
    db: Database
    app: Any
    agent_tokens: dict[str, str]
    operator_token: str

    def operator(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.operator_token}"}


def make_config(tmp: Path, **extra: Any) -> ControllerConfig:
    raw: dict[str, Any] = {
        "listen": "127.0.2.1:0",
        "state_dir": str(tmp / "state"),
        "clients": [
            {"name": "acme", "timezone": "Europe/Moscow", "hosts": [{"name": "web1"}, {"name": "web2"}]},
            {"name": "globex", "hosts": [{"name": "db1", "labels": {"role": "db"}}]},
        ],
    }
    raw.update(extra)
    return parse(raw, str(tmp / "controller.yaml"))


def start_api(
    tmp: Path, live_server: Any, *, database_url: str | None = None, monitor: Any = None,
    fast_path: bool = True, **extra: Any,
) -> Api:
    """Served as ``serve`` serves it (ingest through :class:`IngestFastPath`), or with
    ``fast_path=False`` as the bare FastAPI app (ingest through its route)."""
    cfg = make_config(tmp, **extra)
    db = Database(database_url or cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    agent_tokens = {
        h: inventory.add_host(db, h, c) for h, c in (("web1", "acme"), ("web2", "acme"), ("db1", "globex"))
    }
    op_token = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
    app = create_app(cfg, db, monitor=monitor)
    url = live_server(IngestFastPath(app) if fast_path else app)
    return Api(url, cfg, db, app, agent_tokens, op_token)
