#!/usr/bin/env python3
"""TEST DOUBLE of 1C's `rac` (cluster administration client). Not the vendor's tool.

Implements what boxkeeper uses: cluster list; infobase summary list | info | update; session list
| terminate; process list. Output is `key : value` records separated by blank lines, like rac.
Errors go to stderr with exit code 1 (the real exit code is not documented: an assumption).
Terminating a session that does not exist exits 0, as the real one does (re-list to check).
State: $ONEC_DOUBLE_STATE/cluster.json (see state.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if __package__:
    from .state import ClusterState
else:  # run as a script on the box: import from its own directory
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from state import ClusterState  # type: ignore[import-not-found,no-redef]


class RacError(Exception):
    pass


def records(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    width = max(len(k) for row in rows for k in row)
    blocks = ["\n".join(f"{k.ljust(width)} : {v}" for k, v in row.items()) for row in rows]
    return "\n\n".join(blocks) + "\n"


def options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    words: list[str] = []
    opts: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            opts[key] = value
        elif ":" in arg and not words:
            continue  # ras address (localhost:1545)
        else:
            words.append(arg)
    return words, opts


def find_infobase(data: dict[str, Any], ref: str) -> tuple[str, dict[str, Any]]:
    for name, ib in data["infobases"].items():
        if ref in (ib["uuid"], name):
            return name, ib
    raise RacError("Информационная база не найдена")


def check_auth(ib: dict[str, Any], opts: dict[str, str]) -> None:
    users = ib["users"]
    if users and users.get(opts.get("infobase-user", "")) != opts.get("infobase-pwd", ""):
        raise RacError("Недостаточно прав пользователя на информационную базу")


def run(state: ClusterState, argv: list[str]) -> str:
    words, opts = options(argv)
    data = state.read()
    if not data["agent_up"]:
        raise RacError("Ошибка соединения с сервером администрирования\nАгент кластера недоступен")
    if words[:2] == ["cluster", "list"]:
        return records(
            [
                {
                    "cluster": data["cluster"],
                    "host": data["host"],
                    "port": 1541,
                    "name": f'"{data["cluster_name"]}"',
                    "expiration-timeout": 60,
                    "lifetime-limit": 0,
                    "security-level": 0,
                }
            ]
        )
    if words and words[0] in ("infobase", "session", "process") and opts.get("cluster") != data["cluster"]:
        raise RacError("Кластер не найден" if opts.get("cluster") else "Не указан кластер (--cluster)")
    if words[:3] == ["infobase", "summary", "list"]:
        return records(
            [
                {"infobase": ib["uuid"], "name": n, "descr": f'"{ib["descr"]}"'}
                for n, ib in data["infobases"].items()
            ]
        )
    if words[:2] == ["infobase", "info"]:
        name, ib = find_infobase(data, opts.get("infobase", ""))
        check_auth(ib, opts)
        return records(
            [
                {
                    "infobase": ib["uuid"],
                    "name": name,
                    "dbms": "PostgreSQL",
                    "db-server": (ib["dbms"] or {}).get("host", ""),
                    "db-name": name,
                    "denied-message": f'"{ib["denied_message"]}"',
                    "sessions-deny": ib["sessions_deny"],
                    "permission-code": f'"{ib["permission_code"]}"',
                    "scheduled-jobs-deny": ib["scheduled_jobs_deny"],
                    "license-distribution": "allow",
                }
            ]
        )
    if words[:2] == ["infobase", "update"]:
        with state.edit() as data:
            name, ib = find_infobase(data, opts.get("infobase", ""))
            check_auth(ib, opts)
            for opt, key in (
                ("sessions-deny", "sessions_deny"),
                ("scheduled-jobs-deny", "scheduled_jobs_deny"),
                ("permission-code", "permission_code"),
                ("denied-message", "denied_message"),
            ):
                if opt in opts:
                    ib[key] = opts[opt]
        return ""
    if words[:2] == ["session", "list"]:
        ib_uuid = opts.get("infobase")
        by_uuid = {ib["uuid"]: n for n, ib in data["infobases"].items()}
        rows = []
        for s in data["sessions"]:
            ib = data["infobases"][s["infobase"]]
            if ib_uuid and ib_uuid != ib["uuid"] and by_uuid.get(ib_uuid) != s["infobase"]:
                continue
            rows.append(
                {
                    "session": s["session"],
                    "session-id": s["session-id"],
                    "infobase": ib["uuid"],
                    "user-name": s["user-name"],
                    "host": s["host"],
                    "app-id": s["app-id"],
                    "blocked-by-dbms": s["blocked-by-dbms"],
                    "blocked-by-ls": 0,
                    "hibernate": "no",
                }
            )
        return records(rows)
    if words[:2] == ["session", "terminate"]:
        with state.edit() as data:
            data["sessions"] = [s for s in data["sessions"] if s["session"] != opts.get("session")]
        return ""
    if words[:2] == ["process", "list"]:
        return records(data["processes"])
    raise RacError(f"Неизвестная команда: {' '.join(words)}")


def main() -> int:
    state = ClusterState(Path(os.environ.get("ONEC_DOUBLE_STATE", ".")))
    try:
        sys.stdout.write(run(state, sys.argv[1:]))
    except RacError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
