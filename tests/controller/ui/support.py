"""A controller app with the web page on a real uvicorn server, two clients and one operator."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controller import inventory, operators
from controller.api import create_app
from controller.store.db import Database
from tests.controller.api_setup import make_config


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Page:
    client: httpx.Client
    app: Any
    db: Database
    cfg: Any
    clock: Clock
    token: str
    agent_tokens: dict[str, str] = field(default_factory=dict)

    def sign_in(self, token: str | None = None, next_path: str = "/ui/") -> Any:
        form = self.client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        return self.client.post("/ui/login", data={"token": token or self.token, "csrf": csrf.group(1),
                                                   "next": next_path}, follow_redirects=False)

    def csrf(self, path: str = "/ui/") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)
        assert found is not None, path
        return found.group(1)


def make_page(tmp: Path, live_server: Any,
              hosts: tuple[tuple[str, str], ...] = (("web1", "acme"), ("db1", "globex")),
              config: dict[str, Any] | None = None, **app_args: Any) -> Page:
    """``config``: keys replacing make_config's (such as ``clients`` with SSH addresses)."""
    cfg = make_config(tmp, **(config or {}))
    db = Database(cfg.database)
    db.upgrade()
    inventory.sync_config(cfg, db)
    clock = Clock()
    agent_tokens = {h: inventory.add_host(db, h, c, clock=clock) for h, c in hosts}
    token = operators.add_operator(Path(cfg.operator_tokens_file), "alice")
    app = create_app(cfg, db, clock=clock, **app_args)
    client = httpx.Client(base_url=live_server(app), timeout=30)
    return Page(client, app, db, cfg, clock, token, agent_tokens)
