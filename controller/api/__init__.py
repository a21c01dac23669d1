"""The controller's HTTP API (FastAPI): ``create_app(cfg, db, *, monitor=None)``."""

from controller.api.app import create_app

__all__ = ["create_app"]
