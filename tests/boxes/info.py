"""What a test (or a person) needs to reach a box: the typed, frozen form of `up`'s JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DbInfo:
    """The portal's MariaDB: TCP host/port, the unix socket, the database and its user."""

    host: str
    port: int
    socket: str
    name: str
    user: str
    password: str


@dataclass(frozen=True)
class PgInfo:
    """The PostgreSQL instance of a box started with --with-1c (the 1C infobase's DBMS)."""

    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class BoxInfo:
    """One box. `ssh_key` is the path of the controller's private key, `known_hosts` one
    known_hosts line in the bracketed `[addr]:port keytype key` form."""

    name: str
    address: str
    ssh_port: int
    ssh_user: str
    ssh_key: str
    known_hosts: str
    host_key_fingerprint: str
    portal_url: str
    docroot: str
    db: DbInfo
    pg: PgInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoxInfo:
        fields = dict(data)
        fields["db"] = DbInfo(**data["db"])
        fields["pg"] = PgInfo(**data["pg"]) if data.get("pg") else None
        return cls(**fields)


def infos_to_json(infos: list[BoxInfo]) -> str:
    """The `up` command's output: a JSON list, one object per box."""
    return json.dumps([i.to_dict() for i in infos], indent=2)
