"""Operator tokens: a YAML file of names, SHA-256 hashes, roles and clients (``operator_tokens_file``).

File format (written by ``boxkeeper operators add NAME --role operator --clients acme``, mode 0600)::

    operators:
      - name: alice
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        role: operator          # viewer | operator | admin
        clients: [acme, beta]   # absent: every client
        created_at: 1764300000.0

Roles (each includes the one before): ``viewer`` reads; ``operator`` also acknowledges, resolves
and annotates incidents and starts runs; ``admin`` also manages windows (and, at merge, hosts,
tokens and holds). ``clients`` limits what the operator sees and touches to those clients' hosts.

An entry without ``role`` (a file written before roles existed) is an ``admin`` of every client, so
upgrading changes nobody's access; :func:`read_file` logs a warning naming such entries once per
read so that the operator of the controller gives them a role.

The file is re-read when its modification time changes, so adding or removing an operator needs
no controller restart. The tokens themselves are printed once and never stored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller import tokens
from controller.errors import ConfigError, InventoryError, OperatorTokenError

log = logging.getLogger("boxkeeper.controller.operators")

#: The roles, least to most; each may do what the ones before it may.
ROLES: tuple[str, ...] = ("viewer", "operator", "admin")
#: The role of an entry written before roles existed (backwards compatible: nobody loses access).
LEGACY_ROLE = "admin"


def role_rank(role: str) -> int:
    return ROLES.index(role)


@dataclass(frozen=True)
class Operator:
    name: str
    sha256: str
    role: str = LEGACY_ROLE
    clients: frozenset[str] | None = None  # None: every client

    def may(self, role: str) -> bool:
        """True when this operator's role includes ``role``."""
        return role_rank(self.role) >= role_rank(role)

    def sees(self, client: str | None) -> bool:
        """True when the operator may see things of ``client`` (None: not a client's: only an
        operator of every client sees it)."""
        return self.clients is None or (client is not None and client in self.clients)

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "role": self.role}
        if self.clients is not None:
            out["clients"] = sorted(self.clients)
        return out


def _clients(path: Path, i: int, raw: object) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(c, str) and c for c in raw):
        raise ConfigError(str(path), f"operators[{i}].clients",
                          "a non-empty list of client names (leave the key out for every client)", raw)
    return frozenset(raw)


def read_file(path: Path) -> tuple[Operator, ...]:
    """Parse the operator tokens file; a missing file means no operators (every API call is 401)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise OperatorTokenError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "(file)", "valid YAML", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "(top level)", "a mapping with an 'operators' list", data)
    raw = data.get("operators") or []
    if not isinstance(raw, list):
        raise ConfigError(str(path), "operators", "a list of {name, sha256, role, clients}", raw)
    result = []
    legacy = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(str(path), f"operators[{i}]", "a mapping with name and sha256", item)
        name, digest = item.get("name"), item.get("sha256")
        if not isinstance(name, str) or not name:
            raise ConfigError(str(path), f"operators[{i}].name", "a non-empty string", name)
        if not isinstance(digest, str) or len(digest) != 64:
            # the value is a hash, not a token: showing it does not give a credential away
            raise ConfigError(str(path), f"operators[{i}].sha256", "a hex SHA-256 digest (64 chars)", digest)
        role = item.get("role")
        if role is None:
            legacy.append(name)
            role = LEGACY_ROLE
        elif role not in ROLES:
            raise ConfigError(str(path), f"operators[{i}].role", "one of " + ", ".join(ROLES), role)
        result.append(Operator(name, digest.lower(), role, _clients(path, i, item.get("clients"))))
    if legacy:
        log.warning("%s: operator(s) %s have no role and count as admin of every client (as before "
                    "roles existed); give each one with `boxkeeper operators set NAME --role ROLE`",
                    path, ", ".join(legacy))
    return tuple(result)


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"operators": entries}, fh, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _check(role: str, clients: frozenset[str] | None) -> None:
    if role not in ROLES:
        raise InventoryError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if clients is not None and not clients:
        raise InventoryError("clients: give at least one client name "
                             "(or leave --clients out for every client)")


def add_operator(path: Path, name: str, *, role: str = LEGACY_ROLE, clients: frozenset[str] | None = None,
                 clock: Any = time.time) -> str:
    """Append an operator with a new token to the file (created 0600); returns the token."""
    _check(role, clients)
    current = read_file(path)
    if any(op.name == name for op in current):
        raise InventoryError(f"operator {name!r} already exists in {path}")
    token = tokens.generate(tokens.OPERATOR_PREFIX)
    entries = [op.entry() for op in current]
    added = Operator(name, tokens.hash_token(token), role, clients)
    entries.append({**added.entry(), "created_at": float(clock())})
    _write(path, entries)
    return token


def set_operator(path: Path, name: str, *, role: str | None = None,
                 clients: frozenset[str] | None = None, all_clients: bool = False) -> Operator:
    """Change an operator's role and/or clients (the token stays); returns the new entry."""
    current = read_file(path)
    found = next((op for op in current if op.name == name), None)
    if found is None:
        raise InventoryError(f"no operator {name!r} in {path}")
    new_clients = None if all_clients else (clients if clients is not None else found.clients)
    changed = Operator(found.name, found.sha256, role or found.role, new_clients)
    _check(changed.role, changed.clients)
    _write(path, [changed.entry() if op.name == name else op.entry() for op in current])
    return changed


def remove_operator(path: Path, name: str) -> None:
    """Drop an operator (its token stops working at the next request)."""
    current = read_file(path)
    if not any(op.name == name for op in current):
        raise InventoryError(f"no operator {name!r} in {path}")
    _write(path, [op.entry() for op in current if op.name != name])


class OperatorTokens:
    """Checks operator tokens against the file, re-reading it when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Operator] = {}

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        with self._lock:
            if stamp == self._stamp:
                return
            ops = read_file(self.path) if stamp != (0, -1) else ()
            self._by_hash = {op.sha256: op for op in ops}
            self._stamp = stamp

    def identify(self, token: str | None) -> Operator | None:
        """The operator (name, role, clients) of a valid token, else None."""
        if not token:
            return None
        self._refresh()
        digest = tokens.hash_token(token)
        found = None
        for known, op in self._by_hash.items():
            if tokens.same_hash(known, digest):  # no early exit: the time does not say which
                found = op
        return found

    def by_name(self, name: str) -> Operator | None:
        """The operator called ``name`` as the file says now (None when removed)."""
        self._refresh()
        return next((op for op in self._by_hash.values() if op.name == name), None)

    def check(self, token: str | None) -> str | None:
        """The operator's name for a valid token, else None."""
        op = self.identify(token)
        return op.name if op is not None else None
