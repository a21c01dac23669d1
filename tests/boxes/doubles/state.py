"""State of the 1C TEST DOUBLES (files, plus the infobase content in the box's PostgreSQL).

`cluster.json` holds what the real cluster agent keeps (infobases and their locks, sessions,
worker processes, whether the agent answers); the infobase content (configuration version, DB
configuration version, data version, documents) lives in the infobase's PostgreSQL database when
the box has one, else in `infobase-<name>.json`. Standard library only: the doubles run as
plain `python3` scripts on the box.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_VERSION = "3.1.9.200"


class ClusterState:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.file = self.dir / "cluster.json"

    # -- file access under a lock
    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Any]]:
        with open(self.dir / "cluster.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.file.read_text())
            yield data
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2))
            os.replace(tmp, self.file)

    def read(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.file.read_text())
        return data

    @classmethod
    def create(cls, directory: Path, dbms: dict[str, Any] | None, host: str = "onec-srv") -> ClusterState:
        directory.mkdir(parents=True, exist_ok=True)
        state = cls(directory)
        state.file.write_text(
            json.dumps(
                {
                    "agent_up": True,
                    "cluster": str(uuid.uuid4()),
                    "cluster_name": "Локальный кластер",
                    "host": host,
                    "infobases": {
                        "buh": {
                            "uuid": str(uuid.uuid4()),
                            "descr": "Бухгалтерия предприятия",
                            "sessions_deny": "off",
                            "scheduled_jobs_deny": "off",
                            "permission_code": "",
                            "denied_message": "",
                            "users": {"Администратор": "secret"},
                            "dbms": dbms,
                            "config_errors": False,
                        },
                    },
                    "sessions": [],
                    "processes": [
                        {
                            "process": str(uuid.uuid4()),
                            "host": host,
                            "port": 1560,
                            "pid": "4242",
                            "memory-size": 524288,
                            "memory-excess-time": 0,
                            "available-perfomance": 130,
                        }
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        store = state.store("buh")
        if dbms is None:
            store.restore(
                {
                    "config": {
                        "config_version": START_VERSION,
                        "db_config_version": START_VERSION,
                        "data_version": START_VERSION,
                    },
                    "documents": [],
                }
            )
        return state

    # -- test-side controls
    def set_agent_up(self, up: bool) -> None:
        with self.edit() as data:
            data["agent_up"] = up

    def add_session(
        self, infobase: str = "buh", user: str = "Бухгалтер", app: str = "1CV8C", blocked_by_dbms: int = 0
    ) -> str:
        sid = str(uuid.uuid4())
        with self.edit() as data:
            number = 1 + max((s["session-id"] for s in data["sessions"]), default=0)
            data["sessions"].append(
                {
                    "session": sid,
                    "session-id": number,
                    "infobase": infobase,
                    "user-name": user,
                    "host": "client-pc",
                    "app-id": app,
                    "blocked-by-dbms": blocked_by_dbms,
                }
            )
        return sid

    def sessions(self, infobase: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.read()["sessions"] if infobase in (None, s["infobase"])]

    def infobase(self, name: str = "buh") -> dict[str, Any]:
        info: dict[str, Any] = self.read()["infobases"][name]
        return info

    def store(self, name: str = "buh") -> InfobaseStore:
        return InfobaseStore(self.dir, name, self.infobase(name).get("dbms"))


class InfobaseStore:
    """The content of one infobase: PostgreSQL tables `config` and `documents`, or a JSON file."""

    def __init__(self, directory: Path, name: str, dbms: dict[str, Any] | None) -> None:
        self.file = directory / f"infobase-{name}.json"
        self.dbms = dbms

    def _psql(self, sql: str) -> str:
        assert self.dbms is not None
        env = dict(os.environ, PGPASSWORD=self.dbms["password"])
        res = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                self.dbms["host"],
                "-p",
                str(self.dbms["port"]),
                "-U",
                self.dbms["user"],
                "-d",
                self.dbms["db"],
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-F",
                "\t",
            ],
            input=sql,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if res.returncode != 0:
            raise RuntimeError(f"СУБД: {res.stderr.strip()}")
        return res.stdout

    def dump(self) -> dict[str, Any]:
        if self.dbms is None:
            data: dict[str, Any] = json.loads(self.file.read_text())
            return data
        config = dict(
            line.split("\t", 1) for line in self._psql("SELECT key, value FROM config").splitlines()
        )
        docs = [
            line.split("\t")
            for line in self._psql("SELECT id, title, amount FROM documents ORDER BY id").splitlines()
        ]
        return {"config": config, "documents": docs}

    def restore(self, content: dict[str, Any]) -> None:
        if self.dbms is None:
            self.file.write_text(json.dumps(content, ensure_ascii=False, indent=2))
            return

        sql = ["BEGIN;", "DELETE FROM config;", "DELETE FROM documents;"]
        # every value goes through _q(), which quotes it for SQL
        sql += [f"INSERT INTO config VALUES ({_q(k)}, {_q(v)});" for k, v in content["config"].items()]  # noqa: S608
        # documents keep their ids (a restored infobase is the same data); [title, amount] without one
        for doc in content["documents"]:
            columns = "id, title, amount" if len(doc) == 3 else "title, amount"
            values = ", ".join(_q(v) for v in doc)
            sql.append(f"INSERT INTO documents ({columns}) VALUES ({values});")  # noqa: S608
        sql.append("SELECT setval('documents_id_seq', (SELECT GREATEST(1, MAX(id)) FROM documents));")
        self._psql("\n".join([*sql, "COMMIT;"]))

    def get(self, key: str) -> str:
        return str(self.dump()["config"][key])

    def set(self, key: str, value: str) -> None:
        if self.dbms is not None:  # one row: the documents stay as they are
            self._psql(
                f"INSERT INTO config VALUES ({_q(key)}, {_q(value)}) "  # noqa: S608 (quoted by _q)
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;"
            )
            return
        content = self.dump()
        content["config"][key] = value
        self.restore(content)


def _q(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def make_update(
    directory: Path,
    version: str,
    from_versions: list[str],
    *,
    merge: bool = True,
    command_mode: bool = True,
    config_errors: bool = False,
) -> Path:
    """A configuration update directory like the vendor's: 1cv8.cfu, 1cv8.mft, UpdInfo.txt.
    The .cfu is the double's own format (JSON); `merge=False` makes /UpdateCfg succeed without
    merging anything, `command_mode=False` one that refuses batch mode, `config_errors=True` one
    whose merged configuration /CheckConfig then finds errors in (rc 101)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "1cv8.cfu").write_text(
        json.dumps(
            {
                "format": "1c-double-cfu",
                "version": version,
                "from_versions": from_versions,
                "merge": merge,
                "command_mode": command_mode,
                "config_errors": config_errors,
            }
        )
    )
    (directory / "1cv8.mft").write_text(
        f'Vendor=Фирма "1С"\nName=БухгалтерияПредприятия\nVersion={version}\n'
    )
    (directory / "UpdInfo.txt").write_text(
        f"Version={version}\nFromVersions=;{';'.join(from_versions)};\nUpdateDate=01.10.2025\n"
    )
    return directory
