"""The monthly client report over the API (operator token; a read).

``GET /api/v1/clients/{client}/report?month=2026-11[&format=json|html|md|csv]``: the same
computation and renderers as ``boxkeeper report`` (controller/reports/). json (the default) is
the source the other formats render from.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from controller.api.auth import RoleViewer
from controller.errors import UnknownClientError
from controller.reports.build import build_report
from controller.reports.render import MEDIA_TYPES, render

router = APIRouter(prefix="/api/v1/clients", tags=["reports"])

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"


@router.get(
    "/{client}/report", summary="The client's monthly report",
    responses={
        200: {"description": "the report: JSON, or html / md / csv as asked by `format`",
              "content": {"text/html": {}, "text/markdown": {}, "text/csv": {}}},
        404: {"description": "no such client"},
    },
)
async def client_report(
    request: Request,
    _who: RoleViewer,
    client: Annotated[str, Path(min_length=1, max_length=100, description="client name")],
    month: Annotated[str, Query(pattern=MONTH_PATTERN, description="the month as YYYY-MM, e.g. 2026-11, "
                                                                   "in the client's time zone")],
    format: Annotated[Literal["json", "html", "md", "csv"], Query(description="output format")] = "json",
) -> Any:
    state = request.app.state
    windows = tuple(state.cfg.maintenance)

    def run() -> dict[str, Any]:
        with state.db.read_session() as session:
            try:
                return build_report(session, client=client, month=month, now=state.clock(), windows=windows)
            except UnknownClientError as exc:
                raise HTTPException(404, str(exc)) from None

    report = await run_in_threadpool(run)
    if format == "json":
        return report
    text = render(report, format)
    headers = {"Content-Disposition": f'inline; filename="report-{month}.{format}"'}
    return Response(content=text, media_type=MEDIA_TYPES[format], headers=headers)
