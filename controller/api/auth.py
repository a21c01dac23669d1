"""Who is calling, and may they: operator tokens with roles and clients, agent tokens on ingest.

**Declaring a route's role** is one parameter of its handler, one of::

    who: RoleViewer      # reads
    who: RoleOperator    # acknowledges, resolves, annotates, starts runs
    who: RoleAdmin       # windows, hosts, tokens, holds

``who`` is an :class:`Identity`: a ``str`` (the operator's name, so f-strings and comparisons read
naturally; store ``who.name``, a plain ``str``: msgspec and psycopg want the exact type) with
``.role`` and ``.clients`` (None: every client). ``tests/controller/
test_api_roles.py`` walks ``app.routes`` and fails for an ``/api/`` route without one of these (or
without an entry in :data:`NOT_OPERATOR_ROUTES`).

**Client scoping.** An operator limited to some clients must not learn the names of the others'
hosts, so whatever is outside its clients answers exactly as if it did not exist (404 with the same
message). The role dependency does it for path parameters by itself, using :data:`SCOPED_PARAMS`
(the resource named by the path segment before the parameter); a handler filters its lists with
``who.sees(client)`` and checks hosts named in a body with :func:`visible_host`.

**Order** (see :mod:`controller.api.gate`): the token is checked, then the route's role, then the
token's rate limit, and only then is the body read (bounded): an unknown token costs no parsing.

``Operator`` (a name, any role) is what routes used before roles; a route that only has it is
authenticated but declares no role, and the roles test fails until it does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import fastapi.routing
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from controller import inventory, tokens
from controller.alerting.models import Incident
from controller.operators import ROLES, OperatorTokens, role_rank
from controller.operators import Operator as OperatorEntry
from controller.store.models import Client, Host
from controller.workflows.models import UpdateWindow, WorkflowRun
from controller.workflows.rollout_models import Rollout, RolloutHost

_bearer = HTTPBearer(auto_error=False,
                     description="Operator token (boxkeeper operators add NAME --role ROLE)")

#: Where the gate leaves the caller's identity in the ASGI scope (a session layer may set it too).
SCOPE_KEY = "boxkeeper.identity"

#: Routes that are not an operator's, with who may call them (the roles test reads this).
NOT_OPERATOR_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/reports"): "agent",  # the host's agent token (controller/api/reports.py)
    ("GET", "/healthz"): "public",
    ("GET", "/metrics"): "public",  # with metrics.require_token: a viewer of every client
}


class Identity(str):
    """An authenticated operator: the name (this ``str``), its role and its clients."""

    role: str
    clients: frozenset[str] | None

    def __new__(cls, name: str, role: str, clients: frozenset[str] | None = None) -> Identity:
        self = super().__new__(cls, name)
        self.role = role
        self.clients = clients
        return self

    @property
    def name(self) -> str:
        return str(self)

    @classmethod
    def of(cls, entry: OperatorEntry) -> Identity:
        return cls(entry.name, entry.role, entry.clients)

    def may(self, role: str) -> bool:
        return role_rank(self.role) >= role_rank(role)

    def sees(self, client: str | None) -> bool:
        """May see what belongs to ``client`` (None, not a client's: only an all-clients operator)."""
        return self.clients is None or (client is not None and client in self.clients)


def operator_tokens(request: Request) -> OperatorTokens:
    tokens_: OperatorTokens = request.app.state.operator_tokens
    return tokens_


def unauthorized(detail: str = "operator token required (Authorization: Bearer <token>)") -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(identity: Identity, role: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN,
                         detail=f"operator {identity.name!r} is a {identity.role}; "
                                f"this needs the {role} role")


def identify(request: Request) -> Identity | None:
    """The caller set by the gate (or a session layer), else the Bearer token's operator."""
    found = request.scope.get(SCOPE_KEY)
    if isinstance(found, Identity):
        return found
    entry = operator_tokens(request).identify(tokens.bearer(request.headers.get("authorization")))
    return Identity.of(entry) if entry is not None else None


# --------------------------------------------------------------------------- client scoping

def client_of_host(session: Session, name: str) -> str | None:
    stmt = select(Client.name).join(Host, Host.client_id == Client.id).where(Host.name == name)
    return session.scalar(stmt)


def _row_id(value: str) -> int | None:
    """A path's id as the routes take it (1..2^31-1; anything else is the route's 422)."""
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 1 <= number <= 2**31 - 1 else None


def _incident_client(session: Session, value: str) -> tuple[bool, str | None]:
    incident_id = _row_id(value)
    if incident_id is None:
        return False, None
    row = session.execute(select(Incident.id, Incident.client_name).where(Incident.id == incident_id)).first()
    return (row is not None), (row[1] if row is not None else None)


def _host_client(session: Session, value: str) -> tuple[bool, str | None]:
    client = client_of_host(session, value)
    return client is not None, client


def _run_client(session: Session, value: str) -> tuple[bool, str | None]:
    run_id = _row_id(value)
    if run_id is None:
        return False, None
    host = session.scalar(select(WorkflowRun.host).where(WorkflowRun.id == run_id))
    return (host is not None), (client_of_host(session, host) if host is not None else None)


def _rollout_client(session: Session, value: str) -> tuple[bool, str | None]:
    """A rollout's client: its ``client``, else the one client all its hosts belong to (else None)."""
    rollout_id = _row_id(value)
    if rollout_id is None:
        return False, None
    row = session.execute(select(Rollout.id, Rollout.client).where(Rollout.id == rollout_id)).first()
    if row is None:
        return False, None
    if row[1] is not None:
        return True, row[1]
    hosts = session.scalars(select(RolloutHost.host).where(RolloutHost.rollout_id == rollout_id)).all()
    clients = {client_of_host(session, h) for h in hosts}
    return True, (clients.pop() if len(clients) == 1 else None)


def _window_client(session: Session, value: str) -> tuple[bool, str | None]:
    """An update window's client: its ``client:`` target, else its host's."""
    target = session.scalar(select(UpdateWindow.target).where(UpdateWindow.name == value))
    if target is None:
        return False, None
    if target.startswith("client:"):
        return True, target[len("client:"):]
    return True, client_of_host(session, target)


#: (path segment before the parameter, parameter) → (exists?, its client) for scoping. A route
#: ``/api/v1/hosts/{name}/...`` is scoped by the host's client. One line per scoped resource.
SCOPED_PARAMS: dict[tuple[str, str], Callable[[Session, str], tuple[bool, str | None]]] = {
    ("hosts", "name"): _host_client,
    ("incidents", "incident_id"): _incident_client,
    ("runs", "run_id"): _run_client,
    ("rollouts", "rollout_id"): _rollout_client,
    ("windows", "name"): _window_client,
    ("clients", "client"): lambda session, value: (True, value),
}

#: The 404 message of each scoped resource: word for word what its handler says when the thing
#: does not exist, so that an answer never tells "not yours" from "not there".
NOT_FOUND: dict[str, Callable[[str], str]] = {
    "hosts": lambda v: f"no host {v!r}",
    "incidents": lambda v: f"no incident #{int(v)}",
    "runs": lambda v: f"no run with id {int(v)}",
    "rollouts": lambda v: f"no rollout with id {int(v)}",
    "windows": lambda v: f"no update window named {v!r}",
    "clients": lambda v: f"no client {v!r}",
}


def not_found(segment: str, value: str) -> HTTPException:
    say = NOT_FOUND.get(segment)
    text = say(value) if say is not None else f"no {segment} {value!r}"
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=text)


Resolver = Callable[[Session, str], tuple[bool, str | None]]


def _scoped_params(request: Request) -> list[tuple[str, str, Resolver]]:
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    parts = path.split("/")
    found = []
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("{") and part.endswith("}"):
            param = part[1:-1].split(":")[0]
            resolver = SCOPED_PARAMS.get((parts[i - 1], param))
            if resolver is not None and param in request.path_params:
                found.append((parts[i - 1], str(request.path_params[param]), resolver))
    return found


def enforce_scope(request: Request, identity: Identity) -> None:
    """404 when a scoped path parameter names something outside the operator's clients."""
    if identity.clients is None:
        return
    params = _scoped_params(request)
    if not params:
        return
    with request.app.state.db.read_session() as session:
        for segment, value, resolver in params:
            exists, client = resolver(session, value)
            if exists and not identity.sees(client):
                raise not_found(segment, value)


def visible_host(request: Request, identity: Identity, host: str) -> bool:
    """For a host named in a body or query: True when it exists for this operator (an operator of
    every client sees every name; otherwise the host must be one of its clients')."""
    if identity.clients is None:
        return True
    with request.app.state.db.read_session() as session:
        return identity.sees(client_of_host(session, host))


# --------------------------------------------------------------------------- roles

class RoleRequirement:
    """The dependency behind ``RoleViewer`` / ``RoleOperator`` / ``RoleAdmin``; the gate reads
    ``.role`` off a route's dependencies to refuse before the body is read."""

    def __init__(self, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        self.role = role

    def __call__(
        self, request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Identity:
        identity = identify(request)
        if identity is None:
            raise unauthorized()
        if not identity.may(self.role):
            raise forbidden(identity, self.role)
        enforce_scope(request, identity)
        return identity

    def __repr__(self) -> str:
        return f"require_role({self.role!r})"


_REQUIREMENTS = {role: RoleRequirement(role) for role in ROLES}


def require_role(role: str) -> RoleRequirement:
    """The dependency for ``role`` (one object per role, so routes can be compared)."""
    return _REQUIREMENTS[role]


RoleViewer = Annotated[Identity, Depends(require_role("viewer"))]
RoleOperator = Annotated[Identity, Depends(require_role("operator"))]
RoleAdmin = Annotated[Identity, Depends(require_role("admin"))]


def api_routes(app: Any) -> list[Any]:
    """Every route of the app as it is served (full path, methods, dependencies); FastAPI 0.165
    keeps included routers as such and flattens them in ``iter_route_contexts``."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.routes)) if flatten is not None else list(app.routes)


def declared_role(route: Any) -> str | None:
    """The role a route declares through its dependencies (None: none declared)."""
    dependant = getattr(route, "dependant", None)
    stack = list(dependant.dependencies) if dependant is not None else []
    while stack:
        dep = stack.pop()
        if isinstance(dep.call, RoleRequirement):
            return dep.call.role
        stack.extend(dep.dependencies)
    return None


# --------------------------------------------------------------------------- before roles

def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The operator's name, any role; 401 when the bearer token is missing or not an operator's.
    (Declares no role: use ``RoleViewer``/``RoleOperator``/``RoleAdmin`` on new routes.)"""
    identity = identify(request)
    if identity is None:
        raise unauthorized()
    return identity.name


Operator = Annotated[str, Depends(require_operator)]


# --------------------------------------------------------------------------- agents (ingest)

class AgentTokens:
    """Agent tokens known to be active, so that ingest refuses an unknown one before it reads the
    body. A token found in the database is remembered (by its hash) for ``ttl`` seconds (10,000
    agents pushing every 15 s then cost 17 lookups/s, not 667); an unknown one costs one indexed
    lookup each time. This is a gate, not the authority: the store checks the
    token again in the transaction that stores the report, so a token revoked within the last
    ``ttl`` seconds still gets 401 (after its body was read)."""

    def __init__(self, db: Any, *, ttl: float = 600.0, clock: Callable[[], float] | None = None,
                 max_entries: int = 100_000) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock or time.monotonic
        self.max_entries = max_entries
        self._known: dict[str, float] = {}
        self.lookups = 0  # database lookups made (cache misses)

    def _lookup(self, token: str) -> bool:
        self.lookups += 1
        with self.db.read_session() as session:
            return inventory.token_owner(session.connection(), token) is not None

    async def check(self, token: str) -> str | None:
        """The token's hash when it is an active agent token, else None."""
        digest = tokens.hash_token(token)
        now = self.clock()
        until = self._known.get(digest)
        if until is not None and until > now:
            return digest
        if not await run_in_threadpool(self._lookup, token):
            self._known.pop(digest, None)
            return None
        if len(self._known) >= self.max_entries:
            self._known = {k: v for k, v in self._known.items() if v > now}
        self._known[digest] = now + self.ttl
        return digest
