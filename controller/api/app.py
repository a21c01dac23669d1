"""The FastAPI application: ``create_app(cfg, db, *, monitor=None)``.

Authentication per route:

- ``POST /api/v1/reports``: the host's agent token (Bearer).
- ``GET /healthz``: none (load balancers); says whether the database answers.
- ``GET /metrics``: none by default (Prometheus on a trusted network); with
  ``metrics: {require_token: true}`` an operator token of every client is required.
- everything else (hosts, checks, incidents, update runs and windows): an operator token (Bearer)
  whose role allows the route (:mod:`controller.api.auth`), checked by :class:`~controller.api.gate.Gate`
  before the body is read, with per-token rate limits and body limits (:mod:`controller.api.limits`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from controller import __version__
from controller.alerting.metrics import NotificationCollector
from controller.api import (
    client_reports,
    health,
    hosts,
    incidents,
    releases,
    reports,
    responses,
    runs,
    windows,
    worklog,
)
from controller.api.auth import AgentTokens
from controller.api.gate import Gate
from controller.api.limits import Buckets
from controller.config import ControllerConfig
from controller.fleet_metrics import ControllerHealth, FleetCollector
from controller.ingest import REPORT_ADAPTER
from controller.operators import OperatorTokens
from controller.runtime import WorkflowRuntime
from controller.store.db import Database
from controller.ui.routes import install as install_ui

log = logging.getLogger("boxkeeper.controller")


class MonitorLike(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def create_app(
    cfg: ControllerConfig, db: Database, *, monitor: MonitorLike | None = None,
    workflows: WorkflowRuntime | None = None, clock: Callable[[], float] = time.time,
) -> FastAPI:
    """``workflows``: given (by ``serve``), unfinished runs are reconciled at start and update
    windows are scheduled while the app runs; not given, the API still starts and lists runs."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if monitor is not None:
            monitor.start()
        if workflows is not None:
            workflows.start_service()
        try:
            yield
        finally:
            if workflows is not None:
                workflows.stop_service()
            if monitor is not None:
                monitor.stop()

    app = FastAPI(
        title="boxkeeper controller", version=__version__, lifespan=lifespan,
        description="Fleet state, incidents and metrics of boxkeeper agents.",
    )
    registry = CollectorRegistry(auto_describe=False)
    health_metrics = ControllerHealth(registry)
    registry.register(FleetCollector(cfg, db, clock=clock))
    registry.register(NotificationCollector(db, clock=clock))
    sweeps = getattr(getattr(monitor, "monitor", monitor), "sweeps", None)  # in this process: exposed
    if sweeps is not None:
        registry.register(sweeps.histogram)
    app.state.cfg = cfg
    app.state.db = db
    app.state.monitor = monitor
    app.state.workflows = workflows or WorkflowRuntime(cfg, db)
    app.state.clock = clock
    app.state.registry = registry
    app.state.health = health_metrics
    app.state.operator_tokens = OperatorTokens(Path(cfg.operator_tokens_file))
    app.state.agent_tokens = AgentTokens(db)
    app.state.agent_buckets = Buckets(cfg.limits.agent)
    app.state.operator_buckets = Buckets(cfg.limits.operator)
    app.add_middleware(Gate)

    @app.exception_handler(SQLAlchemyError)
    async def _db_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        health_metrics.db_errors.inc()
        log.error("database error: %s", type(exc).__name__)
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    app.include_router(reports.router)
    app.include_router(hosts.router)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(windows.router)
    app.include_router(windows.changes_router)
    app.include_router(releases.router)
    app.include_router(incidents.router)
    app.include_router(client_reports.router)
    app.include_router(worklog.router)
    install_ui(app)  # the operator web page under /ui/ (controller/ui/)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description,
                             routes=app.routes)
        report_schema = REPORT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["AgentToken"] = {
            "type": "http", "scheme": "bearer", "description": "the host's agent token (boxkeeper hosts add)",
        }
        components = schema["components"].setdefault("schemas", {})
        components.update(report_schema.pop("$defs", {}))
        components["Report"] = report_schema
        responses.report_rules(components)
        responses.declare(app, schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
