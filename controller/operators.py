"""Operator tokens: a YAML file of names and SHA-256 hashes (``operator_tokens_file``).

File format (written by ``boxkeeper operators add NAME``, mode 0600)::

    operators:
      - name: alice
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        created_at: 1764300000.0

The file is re-read when its modification time changes, so adding or removing an operator needs
no controller restart. The tokens themselves are printed once and never stored.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller import tokens
from controller.errors import ConfigError, InventoryError, OperatorTokenError


@dataclass(frozen=True)
class Operator:
    name: str
    sha256: str


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
        raise ConfigError(str(path), "operators", "a list of {name, sha256}", raw)
    result = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(str(path), f"operators[{i}]", "a mapping with name and sha256", item)
        name, digest = item.get("name"), item.get("sha256")
        if not isinstance(name, str) or not name:
            raise ConfigError(str(path), f"operators[{i}].name", "a non-empty string", name)
        if not isinstance(digest, str) or len(digest) != 64:
            raise ConfigError(str(path), f"operators[{i}].sha256", "a hex SHA-256 digest (64 chars)", digest)
        result.append(Operator(name, digest.lower()))
    return tuple(result)


def add_operator(path: Path, name: str, *, clock: Any = time.time) -> str:
    """Append an operator with a new token to the file (created 0600); returns the token."""
    current = read_file(path)
    if any(op.name == name for op in current):
        raise InventoryError(f"operator {name!r} already exists in {path}")
    token = tokens.generate(tokens.OPERATOR_PREFIX)
    entries: list[dict[str, Any]] = [{"name": op.name, "sha256": op.sha256} for op in current]
    entries.append({"name": name, "sha256": tokens.hash_token(token), "created_at": float(clock())})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"operators": entries}, fh, sort_keys=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return token


def remove_operator(path: Path, name: str) -> None:
    """Drop an operator (its token stops working at the next request)."""
    current = read_file(path)
    if not any(op.name == name for op in current):
        raise InventoryError(f"no operator {name!r} in {path}")
    entries = [{"name": op.name, "sha256": op.sha256} for op in current if op.name != name]
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"operators": entries}, fh, sort_keys=False)
    os.replace(tmp, path)


class OperatorTokens:
    """Checks operator tokens against the file, re-reading it when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, str] = {}

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
            self._by_hash = {op.sha256: op.name for op in ops}
            self._stamp = stamp

    def check(self, token: str | None) -> str | None:
        """The operator's name for a valid token, else None."""
        if not token:
            return None
        self._refresh()
        digest = tokens.hash_token(token)
        for known, name in self._by_hash.items():
            if tokens.same_hash(known, digest):
                return name
        return None
