"""The operator web page: ``/ui/`` on the controller's own port (``boxkeeper serve``).

Pages (GET): ``/ui/`` fleet (+ ``/ui/fleet/fragment``, refreshed by ui.js), ``/ui/hosts/{name}``,
``/ui/incidents`` (+ ``/ui/incidents/fragment``), ``/ui/incidents/{id}``, ``/ui/runs``, ``/ui/runs/new``,
``/ui/runs/{id}`` (+ ``/fragment`` while it runs), ``/ui/rollouts``, ``/ui/rollouts/new``,
``/ui/rollouts/{id}``, ``/ui/windows``, ``/ui/windows/new``, ``/ui/windows/{name}/edit``, ``/ui/holds``,
``/ui/reports`` (the form) and ``/ui/clients/{client}/report?month=YYYY-MM`` (the printable report of
controller/reports, served as it is, with its own CSP: inline style, no script); ``/ui/login``,
``/ui/lang/{en|ru}``, ``/ui/static/{ui.css|ui.js}``.
Actions (POST, each with the session's CSRF token): sign-in/out, incident ack/resolve/note,
run confirm/start, run abort (``/ui/runs/{id}/abort``: GET the confirmation naming host and playbook,
POST it), rollout confirm/start/pause/resume/abort, window add/edit/disable/enable, holding and
releasing a release. Every action asks
:func:`controller.ui.access.can` (403 when refused), every page draws only what ``can`` allows.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from controller.alerting import incidents as incident_service
from controller.errors import ConfigError, UnknownClientError
from controller.reports.build import build_report
from controller.reports.period import BadMonthError
from controller.reports.render import render_html
from controller.runtime import WorkflowRuntime
from controller.store.db import Database
from controller.ui import access, i18n, sessions, views
from controller.ui.access import Action, Identity
from controller.ui.render import STATIC_DIR, page, secure
from controller.workflows import releases
from controller.workflows import rollouts as rollout_store
from controller.workflows.aborts import request_abort
from controller.workflows.errors import (
    RolloutStateError,
    RunRefused,
    RunStateError,
    UnknownRolloutError,
    UnknownRunError,
)
from controller.workflows.loader import parse_var_args
from controller.workflows.windows import UnknownWindowError, add_window, edit_window, set_enabled

router = APIRouter(prefix="/ui", include_in_schema=False)

#: the navigation bar: (path, label key). Rollouts, holds and reports are added here when merged.
NAV: list[tuple[str, str]] = [
    ("/ui/", "nav.fleet"),
    ("/ui/incidents", "nav.incidents"),
    ("/ui/runs", "nav.runs"),
    ("/ui/rollouts", "nav.rollouts"),
    ("/ui/windows", "nav.windows"),
    ("/ui/holds", "nav.holds"),
    ("/ui/reports", "nav.reports"),
]
STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}
LOGIN_CSRF_COOKIE = "bk_login_csrf"


class SignInNeeded(Exception):
    def __init__(self, where: str) -> None:
        self.where = where


class Visitor:
    """The signed-in operator of this request: identity, CSRF token, and the page's helpers."""

    def __init__(self, request: Request, signed: sessions.SignedIn) -> None:
        self.request = request
        self.signed = signed
        self.identity: Identity = access.identity_for(request.app.state, signed.operator)

    def can(self, action: Action, client: str | None = None) -> bool:
        return access.can(self.identity, action, client)

    def require(self, action: Action, client: str | None = None) -> None:
        if not self.can(action, client):
            raise HTTPException(403, f"{self.identity.role} may not {action}")

    def render(self, template: str, status_code: int = 200, **context: Any) -> Response:
        return page(self.request, template, {"me": self, "nav": NAV, **context}, status_code=status_code)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


@contextmanager
def _reading(request: Request) -> Iterator[Session]:
    """A read-only session whose rows stay readable after it ends (detached, loaded values kept),
    so templates render from them without touching the database."""
    with _db(request).read_session() as s:
        yield s
        s.expunge_all()


def _now(request: Request) -> float:
    clock: Callable[[], float] = getattr(request.app.state, "clock", time.time)
    return clock()


def _operators_file(request: Request) -> FilePath:
    return FilePath(request.app.state.cfg.operator_tokens_file)


def safe_next(value: str | None) -> str:
    """Only a path of this page: never another site (``//evil``) or scheme."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"


def _signed_in(request: Request) -> sessions.SignedIn | None:
    cookie = request.cookies.get(sessions.COOKIE)
    now = _now(request)
    with _db(request).read_session() as s:
        verdict = sessions.check(s, _operators_file(request), cookie, now)
    if cookie and (verdict.delete or verdict.touch):
        with _db(request).session() as s:
            sessions.record(s, cookie, verdict, now)
    return verdict.signed


async def visitor(request: Request) -> Visitor:
    signed = await run_in_threadpool(_signed_in, request)
    if signed is None:
        where = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(where)
    return Visitor(request, signed)


Me = Annotated[Visitor, Depends(visitor)]
Csrf = Annotated[str, Form(max_length=100)]  # "" when missing: refused with 403


def check_csrf(me: Visitor, given: str) -> None:
    if not sessions.same_csrf(me.signed.csrf, given):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page and try again")


def see_other(url: str) -> Response:
    return secure(RedirectResponse(url, status_code=303))


# ---------------------------------------------------------------------------------------- static


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, "no such file")
    response = FileResponse(STATIC_DIR / name, media_type=STATIC[name])
    response.headers["Cache-Control"] = "max-age=300"
    return secure(response, no_store=False)


# ----------------------------------------------------------------------------- sign-in, language


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    import secrets
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = page(request, "login.html", {"me": None, "nav": [], "csrf": token, "next": safe_next(next),
                                            "error": None})
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form(max_length=600)],
                next: Annotated[str, Form(max_length=2000)] = "/ui/", csrf: Csrf = "") -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if expected is None or not sessions.same_csrf(expected, csrf):
        raise HTTPException(403, "the sign-in form's CSRF token is missing or wrong: reload the page")

    def sign_in() -> str | None:
        op = sessions.operator_of_token(_operators_file(request), token)
        if op is None:
            return None
        with _db(request).session() as s:
            raw, _ = sessions.open_session(s, op, _now(request))
        return raw

    raw = await run_in_threadpool(sign_in)
    if raw is None:
        return page(request, "login.html", {"me": None, "nav": [], "csrf": expected, "next": safe_next(next),
                                            "error": "login.wrong_token"}, status_code=401)
    response = see_other(safe_next(next))
    _set_cookie(request, response, sessions.COOKIE, raw, max_age=sessions.LIFETIME_SECONDS, strict=True)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request, me: Me, csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)

    def close() -> None:
        with _db(request).session() as s:
            sessions.close(s, me.signed.id_sha256)

    await run_in_threadpool(close)
    response = see_other("/ui/login")
    response.delete_cookie(sessions.COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.get("/lang/{code}")
async def set_language(request: Request, code: str, next: str | None = None) -> Response:
    if code not in i18n.CATALOGUES:
        raise HTTPException(404, f"no language {code!r}; there are {', '.join(i18n.CATALOGUES)}")
    response = see_other(safe_next(next))
    _set_cookie(request, response, i18n.COOKIE, code, max_age=365 * 86400, http_only=False)
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int,
                strict: bool = True, http_only: bool = True) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=http_only,
                        samesite="strict" if strict else "lax", secure=request.url.scheme == "https")


# ------------------------------------------------------------------------------------------ fleet


def _fleet_context(request: Request, me: Visitor, client: str, state: str, q: str) -> dict[str, Any]:
    flt = views.FleetFilter(client, state, q)
    with _reading(request) as s:
        clients, names = views.fleet(s, request.app.state.cfg, _now(request), me.identity, flt)
    query = urlencode({k: v for k, v in (("client", client), ("state", state), ("q", q)) if v})
    return {"clients": clients, "client_names": names, "states": views.HOST_STATES, "flt": flt,
            "fragment_url": "/ui/fleet/fragment" + (f"?{query}" if query else "")}


Filter = Annotated[str, Query(max_length=200)]
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # a rollout's or a hold's id


@router.get("/")
async def fleet_page(request: Request, me: Me, client: Filter = "", state: Filter = "",
                     q: Filter = "") -> Response:
    ctx = await run_in_threadpool(_fleet_context, request, me, client, state, q)
    return me.render("fleet.html", **ctx)


@router.get("/fleet/fragment")
async def fleet_fragment(request: Request, me: Me, client: Filter = "", state: Filter = "",
                         q: Filter = "") -> Response:
    ctx = await run_in_threadpool(_fleet_context, request, me, client, state, q)
    return me.render("fleet_table.html", **ctx)


@router.get("/hosts/{name}")
async def host_page(request: Request, me: Me, name: str) -> Response:
    def read() -> views.HostPage | None:
        with _reading(request) as s:
            return views.host_page(s, request.app.state.cfg, _now(request), me.identity, name)

    found = await run_in_threadpool(read)
    if found is None:
        raise HTTPException(404, f"no host {name!r}")
    return me.render("host.html", h=found, status_name=views.status_name)


# -------------------------------------------------------------------------------------- incidents


def _incidents_context(request: Request, me: Visitor, show: str, client: str, host: str) -> dict[str, Any]:
    with _reading(request) as s:
        rows = views.incidents(s, me.identity, open_only=show != "all", client=client, host=host)
    query = urlencode({k: v for k, v in (("show", show), ("client", client), ("host", host)) if v})
    return {"incidents": rows, "show": show, "client": client, "host": host,
            "fragment_url": "/ui/incidents/fragment" + (f"?{query}" if query else "")}


@router.get("/incidents")
async def incidents_page(request: Request, me: Me, show: Filter = "open", client: Filter = "",
                         host: Filter = "") -> Response:
    ctx = await run_in_threadpool(_incidents_context, request, me, show, client, host)
    return me.render("incidents.html", **ctx)


@router.get("/incidents/fragment")
async def incidents_fragment(request: Request, me: Me, show: Filter = "open", client: Filter = "",
                             host: Filter = "") -> Response:
    """The list's rows alone, fetched by ui.js every few seconds (as the fleet's)."""
    ctx = await run_in_threadpool(_incidents_context, request, me, show, client, host)
    return me.render("incident_rows.html", **ctx)


def _incident(request: Request, me: Visitor, incident_id: int) -> tuple[Any, list[Any]]:
    with _reading(request) as s:
        found = views.incident(s, me.identity, incident_id)
    if found is None:
        raise HTTPException(404, f"no incident #{incident_id}")
    return found


IncidentId = Annotated[int, Query(ge=1, le=2**31 - 1)]


@router.get("/incidents/{incident_id}")
async def incident_page(request: Request, me: Me, incident_id: int) -> Response:
    row, timeline = await run_in_threadpool(_incident, request, me, incident_id)
    return me.render("incident.html", i=row, timeline=timeline)


def _policy_and_monitor(request: Request) -> tuple[Any, Any]:
    monitor = getattr(request.app.state, "monitor", None)
    return getattr(monitor, "policy", None), monitor


def _wake(monitor: Any) -> None:
    wake = getattr(monitor, "wake_dispatch", None)
    if callable(wake):
        wake()


NOTE_TAKES_MINUTES = "minutes" in inspect.signature(incident_service.add_note).parameters


@router.post("/incidents/{incident_id}/{verb}")
async def incident_action(
    request: Request, me: Me, incident_id: int, verb: str,
    text: Annotated[str, Form(max_length=4000)] = "",
    minutes: Annotated[str, Form(max_length=10)] = "", csrf: Csrf = "",
) -> Response:
    check_csrf(me, csrf)
    actions: dict[str, Action] = {"ack": "incident.ack", "resolve": "incident.resolve",
                                  "note": "incident.note"}
    if verb not in actions:
        raise HTTPException(404, f"no incident action {verb!r}")
    row, _ = await run_in_threadpool(_incident, request, me, incident_id)
    me.require(actions[verb], row.client_name)
    spent: int | None = None
    if minutes.strip():
        if not minutes.strip().isdigit() or not 0 < int(minutes) <= 10000:
            raise HTTPException(422, "minutes: expected a whole number of minutes from 1 to 10000")
        spent = int(minutes)
    if verb == "note" and not text.strip():
        raise HTTPException(422, "text: expected the note's text")
    policy, monitor = _policy_and_monitor(request)
    actor = me.identity.name

    def act() -> None:
        now = _now(request)
        with _db(request).session() as s:
            if verb == "ack":
                incident_service.acknowledge(s, incident_id, actor=actor, message=text.strip(), now=now,
                                             policy=policy)
            elif verb == "resolve":
                incident_service.resolve_incident(s, incident_id=incident_id, actor=actor,
                                                  message=text.strip() or f"resolved by {actor}", now=now,
                                                  policy=policy)
            elif NOTE_TAKES_MINUTES:
                extra: dict[str, Any] = {"minutes": spent}
                incident_service.add_note(s, incident_id, actor=actor, text=text.strip(), now=now, **extra)
            else:  # the service has no minutes yet: they go into the note's text
                note = text.strip() + (f" [{spent} min]" if spent else "")
                incident_service.add_note(s, incident_id, actor=actor, text=note, now=now)

    await run_in_threadpool(act)
    if verb != "note":
        _wake(monitor)
    return see_other(f"/ui/incidents/{incident_id}")


# ------------------------------------------------------------------------------------------- runs


def _runtime(request: Request) -> WorkflowRuntime:
    runtime: WorkflowRuntime = request.app.state.workflows
    return runtime


@router.get("/runs")
async def runs_page(request: Request, me: Me) -> Response:
    def read() -> list[Any]:
        with _reading(request) as s:
            return views.runs(s, request.app.state.cfg, me.identity)

    return me.render("runs.html", runs=await run_in_threadpool(read))


def _run_choices(request: Request, me: Visitor,
                 action: Action = "run.start") -> tuple[list[tuple[str, str]], list[str]]:
    """(host, client) pairs the visitor may start runs on, and the playbooks of the playbooks dir."""
    cfg = request.app.state.cfg
    hosts = [(h.name, c.name) for c in cfg.clients for h in c.hosts
             if h.ssh_address is not None and me.can(action, c.name)]
    playbooks = sorted(p.stem for p in _runtime(request).playbooks_dir.glob("*.yaml"))
    return hosts, playbooks


@router.get("/runs/new")
async def run_form(request: Request, me: Me, host: Filter = "") -> Response:
    me.require("run.start")
    hosts, playbooks = _run_choices(request, me)
    return me.render("run_new.html", hosts=hosts, playbooks=playbooks, chosen=host)


Name = Annotated[str, Form(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
VarsText = Annotated[str, Form(max_length=20000)]


def _checked_run(request: Request, me: Visitor, host: str, playbook: str, variables: str) -> dict[str, str]:
    client = views.client_of_host(request.app.state.cfg, host)
    if client is None:
        raise HTTPException(422, f"host: no host {host!r} in the controller config")
    me.require("run.start", client)
    _, playbooks = _run_choices(request, me)
    if playbook not in playbooks:
        raise HTTPException(422, f"playbook: expected one of {', '.join(playbooks)}, got {playbook!r}")
    try:
        return parse_var_args([line.strip() for line in variables.splitlines() if line.strip()])
    except ConfigError as exc:
        raise HTTPException(422, f"variables: {exc}") from None


@router.post("/runs/confirm")
async def run_confirm(request: Request, me: Me, host: Name, playbook: Name,
                      variables: VarsText = "", dry_run: Annotated[str, Form(max_length=5)] = "",
                      csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    parsed = _checked_run(request, me, host, playbook, variables)
    runtime = _runtime(request)

    def values() -> dict[str, str]:
        """The run's values as the run would take them (ConfigError now, not after confirming);
        a secret variable's value is shown as ***."""
        book = runtime.playbook(playbook)
        runtime.overrides(host, book, parsed)
        secret = {v.name for v in book.variables if v.secret}
        return {k: "***" if k in secret else v for k, v in parsed.items()}

    try:
        shown = await run_in_threadpool(values)
    except ConfigError as exc:
        return me.render("message.html", status_code=422, title_key="runs.refused", message=str(exc))
    return me.render("run_confirm.html", host=host, playbook=playbook, variables=variables, parsed=shown,
                     dry_run=bool(dry_run))


@router.post("/runs")
async def run_start(request: Request, me: Me, host: Name, playbook: Name,
                    variables: VarsText = "", dry_run: Annotated[str, Form(max_length=5)] = "",
                    csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    parsed = _checked_run(request, me, host, playbook, variables)
    try:
        run_id = await run_in_threadpool(_runtime(request).start, playbook, host, parsed,
                                         dry_run=bool(dry_run))
    except RunRefused as exc:
        return me.render("message.html", status_code=409, title_key="runs.refused", message=str(exc))
    except ConfigError as exc:
        return me.render("message.html", status_code=422, title_key="runs.refused", message=str(exc))
    return see_other(f"/ui/runs/{run_id}")


def _run_page(request: Request, me: Visitor, run_id: int) -> views.RunPage:
    with _reading(request) as s:
        found = views.run_page(s, request.app.state.cfg, me.identity, run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id}")
    return found


@router.get("/runs/{run_id}")
async def run_page(request: Request, me: Me, run_id: int) -> Response:
    return me.render("run.html", r=await run_in_threadpool(_run_page, request, me, run_id))


@router.get("/runs/{run_id}/fragment")
async def run_fragment(request: Request, me: Me, run_id: int) -> Response:
    return me.render("run_body.html", r=await run_in_threadpool(_run_page, request, me, run_id))


@router.get("/runs/{run_id}/abort")
async def run_abort_confirm(request: Request, me: Me, run_id: int) -> Response:
    """The confirmation: which run, host and playbook, and what an abort does now."""
    found = await run_in_threadpool(_run_page, request, me, run_id)
    me.require("run.abort", views.client_of_host(request.app.state.cfg, found.run.host))
    if not found.may_abort:
        return me.render("message.html", status_code=409, title_key="runs.abort_refused",
                         message=f"run {run_id} is {found.run.state}: nothing to abort")
    return me.render("run_abort.html", r=found)


@router.post("/runs/{run_id}/abort")
async def run_abort(request: Request, me: Me, run_id: int, csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    found = await run_in_threadpool(_run_page, request, me, run_id)
    me.require("run.abort", views.client_of_host(request.app.state.cfg, found.run.host))

    def write() -> None:
        with _db(request).session() as s:
            request_abort(s, run_id, actor=me.identity.name, now=_now(request))

    try:
        await run_in_threadpool(write)
    except UnknownRunError as exc:
        raise HTTPException(404, str(exc)) from None
    except RunStateError as exc:
        return me.render("message.html", status_code=409, title_key="runs.abort_refused", message=str(exc))
    return see_other(f"/ui/runs/{run_id}")


# --------------------------------------------------------------------------------------- rollouts


@router.get("/rollouts")
async def rollouts_page(request: Request, me: Me) -> Response:
    def read() -> list[Any]:
        with _reading(request) as s:
            return views.rollouts(s, request.app.state.cfg, me.identity)

    return me.render("rollouts.html", rollouts=await run_in_threadpool(read))


# the rollout start form, its confirmation and the start (before /rollouts/{id}: "new" is no id)

Scope = Annotated[str, Form(pattern=r"^(hosts|client|all)$")]
HostList = Annotated[list[str], Form(max_length=1000)]
FormText = Annotated[str, Form(max_length=200)]


@router.get("/rollouts/new")
async def rollout_form(request: Request, me: Me) -> Response:
    me.require("rollout.start")
    hosts, playbooks = _run_choices(request, me, "rollout.start")
    clients = [c.name for c in request.app.state.cfg.clients if me.can("rollout.start", c.name)]
    return me.render("rollout_new.html", hosts=hosts, clients=clients, playbooks=playbooks)


@dataclass(frozen=True)
class RolloutAsked:
    """A rollout as the form asks it, checked: its plan (hosts in batch order, the canary first)."""

    playbook: str
    plan: rollout_store.RolloutPlan
    given: dict[str, str]
    shown: dict[str, str]  # the variables as shown: a secret one as ***
    variables: str
    dry_run: bool


def _checked_rollout(request: Request, me: Visitor, playbook: str, scope: str, hosts: list[str],
                     client: str, canary: str, batch_size: str, max_failures: str, variables: str,
                     dry_run: str) -> RolloutAsked:
    """The hosts as ``update run --hosts/--client/--all`` and ``POST /api/v1/rollouts`` take them
    (``WorkflowRuntime.fleet_hosts``), every one of a client the visitor may start on (403 naming
    the others), the plan and the values (ConfigError as the start would raise it)."""
    me.require("rollout.start")
    rt, cfg = _runtime(request), request.app.state.cfg
    _, playbooks = _run_choices(request, me)
    if playbook not in playbooks:
        raise HTTPException(422, f"playbook: expected one of {', '.join(playbooks)}, got {playbook!r}")
    if scope == "client" and (cfg.client(client) is None or not access.sees(me.identity, client)):
        raise HTTPException(422, f"client: no client {client!r}")
    if scope == "hosts":
        unknown = [h for h in hosts if views.client_of_host(cfg, h) is None]
        if not hosts:
            raise HTTPException(422, "hosts: choose at least one host")
        if unknown:
            raise HTTPException(422, f"hosts: expected hosts of the controller config: {', '.join(unknown)}")
    chosen = rt.fleet_hosts(hosts=hosts if scope == "hosts" else (),
                            client=client if scope == "client" else None, everything=scope == "all")
    if scope == "all":  # "all": every host of the clients this operator may start on, as the API's
        chosen = [h for h in chosen if me.can("rollout.start", views.client_of_host(cfg, h))]
    refused = [h for h in chosen if not me.can("rollout.start", views.client_of_host(cfg, h))]
    if refused:
        raise HTTPException(403, f"{me.identity.name} may not start a rollout on {', '.join(refused)} "
                                 "(another client's hosts)")
    if not max_failures.strip().isdigit():
        raise HTTPException(422, f"max_failures: expected a number >= 0, got {max_failures!r}")
    try:
        given = parse_var_args([line.strip() for line in variables.splitlines() if line.strip()])
    except ConfigError as exc:
        raise HTTPException(422, f"variables: {exc}") from None
    plan = rollout_store.make_plan(chosen, canary=canary.strip() or None, batch=batch_size.strip() or "1",
                                   max_failures=int(max_failures))
    book = rt.playbook(playbook)
    for host in plan.hosts:
        rt.overrides(host, book, given)
    secret = {v.name for v in book.variables if v.secret}
    shown = {k: "***" if k in secret else v for k, v in given.items()}
    return RolloutAsked(playbook, plan, given, shown, variables, bool(dry_run))


async def _asked(me: Visitor, check: Callable[[], RolloutAsked]) -> RolloutAsked | Response:
    try:
        return await run_in_threadpool(check)
    except ConfigError as exc:
        return me.render("message.html", status_code=422, title_key="rollouts.not_started", message=str(exc))


@router.post("/rollouts/confirm")
async def rollout_confirm(request: Request, me: Me, playbook: Name, scope: Scope, hosts: HostList = [],  # noqa: B006
                          client: FormText = "", canary: FormText = "", batch_size: FormText = "1",
                          max_failures: FormText = "0", variables: VarsText = "",
                          dry_run: Annotated[str, Form(max_length=5)] = "", csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    asked = await _asked(me, lambda: _checked_rollout(request, me, playbook, scope, hosts, client, canary,
                                                      batch_size, max_failures, variables, dry_run))
    if isinstance(asked, Response):
        return asked
    return me.render("rollout_confirm.html", a=asked, batches=asked.plan.batches())


@router.post("/rollouts")
async def rollout_start(request: Request, me: Me, playbook: Name, hosts: HostList = [],  # noqa: B006
                        canary: FormText = "", batch_size: FormText = "1", max_failures: FormText = "0",
                        variables: VarsText = "", dry_run: Annotated[str, Form(max_length=5)] = "",
                        csrf: Csrf = "") -> Response:
    """Start what the confirmation named: its hosts (listed, in their order), as ``--hosts``."""
    check_csrf(me, csrf)
    asked = await _asked(me, lambda: _checked_rollout(request, me, playbook, "hosts", hosts, "", canary,
                                                      batch_size, max_failures, variables, dry_run))
    if isinstance(asked, Response):
        return asked
    plan = asked.plan

    def start() -> int:
        return _runtime(request).start_rollout(asked.playbook, plan.hosts, asked.given, canary=plan.canary,
                                               batch=plan.batch_size, max_failures=plan.max_failures,
                                               dry_run=asked.dry_run, started_by=me.identity.name)

    try:
        rollout_id = await run_in_threadpool(start)
    except ConfigError as exc:
        return me.render("message.html", status_code=422, title_key="rollouts.not_started", message=str(exc))
    return see_other(f"/ui/rollouts/{rollout_id}")


def _rollout(request: Request, me: Visitor, rollout_id: int) -> tuple[rollout_store.RolloutSummary, bool]:
    """The rollout (404 when unknown or not all its hosts are of the visitor's clients), and whether
    the visitor may pause, resume or abort it (on every client of its hosts)."""
    with _reading(request) as s:
        found = views.rollout(s, request.app.state.cfg, me.identity, rollout_id)
    if found is None:
        raise HTTPException(404, f"no rollout {rollout_id}")
    clients = views.rollout_clients(request.app.state.cfg, found)
    return found, all(me.can("rollout.control", c) for c in clients)


@router.get("/rollouts/{rollout_id}")
async def rollout_page(request: Request, me: Me, rollout_id: RowId) -> Response:
    found, may = await run_in_threadpool(_rollout, request, me, rollout_id)
    return me.render("rollout.html", r=found, may_control=may and found.state not in rollout_store.ENDED)


@router.post("/rollouts/{rollout_id}/{verb}")
async def rollout_action(request: Request, me: Me, rollout_id: RowId, verb: str,
                         csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    if verb not in ("pause", "resume", "abort"):
        raise HTTPException(404, f"no rollout action {verb!r}")
    _, may = await run_in_threadpool(_rollout, request, me, rollout_id)
    if not may:
        raise HTTPException(403, f"{me.identity.role} may not {verb} this rollout")

    def write() -> None:
        with _db(request).session() as s:
            rollout_store.request(s, rollout_id, verb, actor=me.identity.name, now=_now(request))

    try:
        await run_in_threadpool(write)
    except UnknownRolloutError as exc:
        raise HTTPException(404, str(exc)) from None
    except RolloutStateError as exc:
        return me.render("message.html", status_code=409, title_key="rollouts.refused", message=str(exc))
    return see_other(f"/ui/rollouts/{rollout_id}")


# ---------------------------------------------------------------------------------------- windows


@router.get("/windows")
async def windows_page(request: Request, me: Me) -> Response:
    def read() -> list[Any]:
        with _reading(request) as s:
            return views.windows(s, request.app.state.cfg, me.identity, _now(request))

    return me.render("windows.html", windows=await run_in_threadpool(read))


@router.get("/windows/new")
async def window_form(request: Request, me: Me) -> Response:
    me.require("window.add")
    cfg = request.app.state.cfg
    targets = [(f"client:{c.name}", c.name) for c in cfg.clients if me.can("window.add", c.name)]
    targets += [(h.name, c.name) for c in cfg.clients for h in c.hosts if me.can("window.add", c.name)]
    playbooks = sorted(p.stem for p in _runtime(request).playbooks_dir.glob("*.yaml"))
    return me.render("window_new.html", targets=targets, playbooks=playbooks)


@router.post("/windows")
async def window_add(request: Request, me: Me, name: Name, target: Annotated[str, Form(max_length=200)],
                     playbook: Name, cron: Annotated[str, Form(min_length=1, max_length=100)],
                     duration_minutes: Annotated[int, Form(ge=1, le=7 * 24 * 60)],
                     timezone: Annotated[str, Form(max_length=64)] = "", csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    cfg = request.app.state.cfg
    if target.startswith("client:"):
        client_cfg = cfg.client(target.removeprefix("client:"))
        if client_cfg is None:
            raise HTTPException(422, f"target: unknown client {target!r}")
        client, zone = client_cfg.name, client_cfg.timezone
    else:
        found = cfg.host(target)
        if found is None:
            raise HTTPException(422, f"target: unknown host {target!r}")
        client, zone = found[0].name, found[1].timezone
    me.require("window.add", client)

    def write() -> None:
        with _db(request).session() as s:
            add_window(s, name=name, target=target, playbook=playbook, cron=cron,
                       duration_minutes=duration_minutes,
                       timezone=timezone.strip() or zone, variables={}, now=_now(request),
                       actor=me.identity.name)

    try:
        await run_in_threadpool(write)
    except ConfigError as exc:
        return me.render("message.html", status_code=422, title_key="windows.refused", message=str(exc))
    except IntegrityError:
        return me.render("message.html", status_code=409, title_key="windows.refused",
                         message=f"a window named {name!r} exists already")
    return see_other("/ui/windows")


def _window_target(request: Request, me: Visitor, target: str) -> str:
    """The client of a window's target (``client:NAME`` or a host) that the visitor may add windows
    for (422 when unknown, 403 when another client's)."""
    cfg = request.app.state.cfg
    if target.startswith("client:"):
        found = cfg.client(target.removeprefix("client:"))
        client = None if found is None else found.name
    else:
        client = views.client_of_host(cfg, target)
    if client is None:
        raise HTTPException(422, f"target: unknown host or client {target!r}")
    me.require("window.add", client)
    return str(client)


def _window_row(request: Request, me: Visitor, name: str) -> tuple[Any, str | None]:
    with _reading(request) as s:
        rows = views.windows(s, request.app.state.cfg, me.identity, _now(request))
    for w, _, client in rows:
        if w.name == name:
            return w, client
    raise HTTPException(404, f"no update window named {name!r}")


@router.get("/windows/{name}/edit")
async def window_edit_form(request: Request, me: Me, name: str) -> Response:
    window, client = await run_in_threadpool(_window_row, request, me, name)
    me.require("window.add", client)
    cfg = request.app.state.cfg
    targets = [(f"client:{c.name}", c.name) for c in cfg.clients if me.can("window.add", c.name)]
    targets += [(h.name, c.name) for c in cfg.clients for h in c.hosts if me.can("window.add", c.name)]
    playbooks = sorted(p.stem for p in _runtime(request).playbooks_dir.glob("*.yaml"))
    return me.render("window_edit.html", w=window, targets=targets, playbooks=playbooks)


@router.post("/windows/{name}/edit")
async def window_edit(request: Request, me: Me, name: str, target: Annotated[str, Form(max_length=200)],
                      playbook: Name, cron: Annotated[str, Form(min_length=1, max_length=100)],
                      duration_minutes: Annotated[int, Form(ge=1, le=7 * 24 * 60)],
                      timezone: Annotated[str, Form(min_length=1, max_length=64)],
                      csrf: Csrf = "") -> Response:
    """Change a window's hosts (its target) and schedule, as ``PATCH /api/v1/windows/{name}``:
    recorded with the operator (an admin of the window's client and of the new target's)."""
    check_csrf(me, csrf)
    _, client = await run_in_threadpool(_window_row, request, me, name)
    me.require("window.add", client)
    _window_target(request, me, target)

    def write() -> None:
        with _db(request).session() as s:
            edit_window(s, name, actor=me.identity.name, now=_now(request), target=target, playbook=playbook,
                        cron=cron, duration_minutes=duration_minutes, timezone=timezone.strip())

    try:
        await run_in_threadpool(write)
    except UnknownWindowError as exc:
        raise HTTPException(404, str(exc)) from None
    except ConfigError as exc:
        return me.render("message.html", status_code=422, title_key="windows.edit_refused", message=str(exc))
    return see_other("/ui/windows")


@router.post("/windows/{name}/{verb}")
async def window_enable(request: Request, me: Me, name: str, verb: str, csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    if verb not in ("enable", "disable"):
        raise HTTPException(404, f"no window action {verb!r}")

    def client_of() -> str | None:
        with _reading(request) as s:
            rows = views.windows(s, request.app.state.cfg, me.identity, _now(request))
        for w, _, client in rows:
            if w.name == name:
                return client
        raise HTTPException(404, f"no update window named {name!r}")

    client = await run_in_threadpool(client_of)
    me.require("window.enable", client)

    def write() -> None:
        with _db(request).session() as s:
            set_enabled(s, name, verb == "enable", actor=me.identity.name, now=_now(request))

    try:
        await run_in_threadpool(write)
    except UnknownWindowError as exc:
        raise HTTPException(404, str(exc)) from None
    return see_other("/ui/windows")


# ------------------------------------------------------------------------------------ release holds


@router.get("/holds")
async def holds_page(request: Request, me: Me, show: Filter = "held") -> Response:
    def read() -> list[releases.Hold]:
        with _reading(request) as s:
            return releases.list_holds(s, include_released=show == "all")

    playbooks = sorted(p.stem for p in _runtime(request).playbooks_dir.glob("*.yaml"))
    return me.render("holds.html", holds=await run_in_threadpool(read), show=show, playbooks=playbooks)


@router.post("/holds/{hold_id}/release")
async def hold_release(request: Request, me: Me, hold_id: RowId, csrf: Csrf = "") -> Response:
    check_csrf(me, csrf)
    me.require("release.release")

    def write() -> None:
        with _db(request).session() as s:
            releases.release(s, hold_id, actor=me.identity.name, now=_now(request))

    try:
        await run_in_threadpool(write)
    except releases.UnknownHoldError as exc:
        raise HTTPException(404, str(exc)) from None
    return see_other("/ui/holds")


@router.post("/holds")
async def hold_add(request: Request, me: Me, playbook: Name,
                   release: Annotated[str, Form(max_length=2000)] = "",
                   reason: Annotated[str, Form(max_length=2000)] = "", csrf: Csrf = "") -> Response:
    """Hold a release by hand, as ``boxkeeper releases hold`` and ``POST /api/v1/releases``: its runs
    end SKIPPED until it is allowed again."""
    check_csrf(me, csrf)
    me.require("release.hold")
    if not releases.normalize(release):
        raise HTTPException(422, "release: expected the release to hold (such as main=24.100.0), got nothing")

    def write() -> None:
        with _db(request).session() as s:
            releases.hold(s, playbook=playbook, release=release, actor=me.identity.name, now=_now(request),
                          reason=reason.strip() or "held by hand")

    await run_in_threadpool(write)
    return see_other("/ui/holds")


# ---------------------------------------------------------------------------------- monthly report


@router.get("/reports")
async def report_form(request: Request, me: Me, client: Filter = "", month: Filter = "") -> Response:
    """The form picking a client and a month; with both, the report itself."""
    if client and month:
        return see_other(f"/ui/clients/{quote(client, safe='')}/report?" + urlencode({"month": month}))
    clients = [c.name for c in request.app.state.cfg.clients if access.sees(me.identity, c.name)]
    default = datetime.fromtimestamp(_now(request), UTC).strftime("%Y-%m")
    return me.render("reports.html", clients=clients, month=month or default)


#: the report is one self-contained file with its own inline style and SVG, and no script
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
              "frame-ancestors 'none'; base-uri 'none'")


@router.get("/clients/{client}/report")
async def report_page(request: Request, me: Me, client: str,
                      month: Annotated[str, Query(max_length=20)] = "") -> Response:
    if not access.sees(me.identity, client) or request.app.state.cfg.client(client) is None:
        raise HTTPException(404, f"no client {client!r}")
    if not month:
        return see_other("/ui/reports?" + urlencode({"client": client}))
    state = request.app.state
    windows = tuple(getattr(state.cfg, "maintenance", ()))

    def run() -> str:
        with _db(request).read_session() as s:
            report = build_report(s, client=client, month=month, now=_now(request), windows=windows)
        return render_html(report)

    try:
        html = await run_in_threadpool(run)
    except UnknownClientError as exc:
        raise HTTPException(404, str(exc)) from None
    except BadMonthError as exc:
        raise HTTPException(422, f"month: {exc}") from None
    response = secure(HTMLResponse(html))
    response.headers["Content-Security-Policy"] = REPORT_CSP
    return response


# ------------------------------------------------------------------------------ errors and hooks


def install(app: Any) -> None:
    """Add the page to ``app``: its routes, and the handlers that turn "not signed in" into a
    redirect to the sign-in form and an HTTP error on a /ui/ path into a page."""
    from fastapi.exception_handlers import request_validation_exception_handler
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    default_http = app.exception_handlers.get(StarletteHTTPException)
    app.include_router(router)

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        if request.url.path.endswith("/fragment"):
            return secure(Response(status_code=401))
        return see_other("/ui/login?" + urlencode({"next": exc.where}))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith("/ui/"):
            if default_http is not None:
                result: Response = await default_http(request, exc)
                return result
            from fastapi.exception_handlers import http_exception_handler
            return await http_exception_handler(request, exc)
        return page(request, "message.html", {"me": None, "nav": [], "title_key": "error.title",
                                              "message": str(exc.detail)}, status_code=exc.status_code)

    async def invalid_form(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not request.url.path.startswith("/ui/"):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}"
                             for e in exc.errors())
        return page(request, "message.html", {"me": None, "nav": [], "title_key": "error.title",
                                              "message": problems}, status_code=422)

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_form)
