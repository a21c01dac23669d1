"""Every permission decision of the web page, in one function: :func:`can`.

The pages call ``can(identity, action, client)`` to decide what to show (a button is not drawn)
and again when the action arrives (403 when refused), so hiding and refusing never disagree.

Roles (DESIGN.md "Roles and clients"): ``viewer`` reads; ``operator`` also acts on incidents, runs
and windows; ``admin`` may do everything. An identity may be limited to some clients
(``clients``; None = every client).

The role and clients are those of the operators file (``operators add NAME --role R --clients
a,b``), read at every request (:func:`identity_for`), so a changed role applies at once and the API
and the page agree; an operator no longer in the file sees nothing. ``app.state.ui_roles`` (a
callable ``name -> (role, clients)``) replaces the file when set (tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")

#: what a page may do; READ actions need ``viewer``, the others ``operator``
Action = Literal[
    "view",              # see a client's hosts, incidents, runs, windows
    "incident.ack",      # acknowledge an incident
    "incident.resolve",  # resolve an incident by hand
    "incident.note",     # add a note (with minutes spent)
    "run.start",         # start an update run
    "run.abort",         # abort a going run (at its next step boundary)
    "window.add",        # add an update window
    "window.enable",     # disable or enable an update window
    "release.release",   # lift a release hold (fleet-wide: an admin of every client only)
    "rollout.control",   # pause, resume or abort a rollout
    "rollout.start",     # start a rollout (every chosen host's client)
    "release.hold",      # hold a release by hand (fleet-wide: an admin of every client only)
]
ACTIONS: tuple[Action, ...] = ("view", "incident.ack", "incident.resolve", "incident.note", "run.start",
                               "run.abort", "window.add", "window.enable", "release.release",
                               "rollout.control", "rollout.start", "release.hold")

#: actions on things of the whole fleet: refused to an identity limited to some clients, whatever
#: ``client`` is asked about (as ``_fleet_wide`` of controller/api/releases.py)
FLEET_WIDE: frozenset[Action] = frozenset({"release.release", "release.hold"})

_LEAST_ROLE: dict[Action, Role] = {
    "view": "viewer",
    "incident.ack": "operator",
    "incident.resolve": "operator",
    "incident.note": "operator",
    "run.start": "operator",
    "run.abort": "operator",  # as POST /api/v1/runs/{id}/abort
    "window.add": "admin",  # as POST /api/v1/windows
    "window.enable": "admin",  # as window.add
    "release.release": "admin",  # as POST /api/v1/releases/{id}/release
    "rollout.control": "operator",  # as POST /api/v1/rollouts/{id}/pause|resume|abort
    "rollout.start": "operator",  # as POST /api/v1/rollouts
    "release.hold": "admin",  # as POST /api/v1/releases
}

#: name -> (role, clients or None for all): the seam for the operators file's roles
RoleLookup = Callable[[str], tuple[Role, frozenset[str] | None]]


@dataclass(frozen=True)
class Identity:
    """Who is signed in, as far as permissions go."""

    name: str
    role: Role = "admin"
    clients: frozenset[str] | None = None  # None: every client


def can(identity: Identity, action: Action, client: str | None = None) -> bool:
    """May ``identity`` take ``action`` on ``client``'s things? ``client=None`` asks about the
    action in general (e.g. whether to draw a "start a run" link at all); an identity limited to
    some clients may act on a thing of no client (a fleet-wide window) only as ``admin``."""
    if ROLES.index(identity.role) < ROLES.index(_LEAST_ROLE[action]):
        return False
    if action in FLEET_WIDE:
        return identity.clients is None
    if identity.clients is None or client is None:
        return True
    return client in identity.clients


def sees(identity: Identity, client: str | None) -> bool:
    """Whether a thing of ``client`` is shown at all (``client`` None: a thing of no client, shown
    only to identities of every client)."""
    if client is None:
        return identity.clients is None
    return can(identity, "view", client)


def identity_for(app_state: Any, name: str) -> Identity:
    """The signed-in operator's identity: ``app.state.ui_roles(name)`` when set, else the operators
    file's entry (no entry: a viewer of no client)."""
    lookup: RoleLookup | None = getattr(app_state, "ui_roles", None)
    if lookup is not None:
        role, clients = lookup(name)
        return Identity(name, role, clients)
    tokens = getattr(app_state, "operator_tokens", None)
    entry = tokens.by_name(name) if tokens is not None else None
    if entry is None or entry.role not in ROLES:
        return Identity(name, "viewer", frozenset())
    return Identity(name, cast(Role, entry.role), entry.clients)
