#!/usr/bin/env python3
"""TEST DOUBLE of `1cv8 DESIGNER` batch mode (and `1cv8c ENTERPRISE /C...`). Not the vendor's tool.

Reproduces the documented behaviour (DOMAIN.md, measured on 8.3.27): exit code + message in the
/Out log (UTF-8 with BOM, CRLF lines; -NoTruncate appends):
  /DumpIB f.dt      rc 0 "Выгрузка информационной базы успешно завершена"
  /RestoreIB f.dt   rc 1 "Ошибка исключительной блокировки информационной базы." while any session
                    exists (-SessionTerminate force does not help); else rc 0, overwrites
  /UpdateCfg f.cfu  rc 0 "Обновление конфигурации успешно завершено", also when nothing was merged;
                    rc 1 "Файл не содержит доступных обновлений" (current version not in FromVersions);
                    rc 1 "Невозможно выполнение обновления конфигурации в командном режиме"
  /UpdateDBCfg      rc 1 with the list of sessions unless -SessionTerminate force; /UpdateCfg alone
                    does not restructure the DB
  /CheckConfig      rc 0, or rc 101 when errors are found
The success lines of /UpdateDBCfg, /CheckConfig and the data-update run are NOT in DOMAIN.md
(assumed wording, [unverified]): the playbooks decide those by exit code and state, never by them.
It needs no X display (the real one does: run it under xvfb-run). State: $ONEC_DOUBLE_STATE.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __package__:
    from .state import ClusterState
else:  # run as a script on the box: import from its own directory
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from state import ClusterState  # type: ignore[import-not-found,no-redef]

DATA_UPDATE = "ЗапуститьОбновлениеИнформационнойБазы"


class Failed(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


KEYED = {"/s", "/f", "/n", "/p", "/out", "/uc", "/c"}
FILE_COMMANDS = {"/dumpib", "/restoreib", "/updatecfg", "/loadcfg", "/dumpcfg"}


def parse(argv: list[str]) -> tuple[str, dict[str, str], list[tuple[str, list[str]]]]:
    """1C command line: MODE, then /Key value settings, /Command [file] [-flags]."""
    mode = argv[0].upper() if argv else ""
    settings: dict[str, str] = {}
    commands: list[tuple[str, list[str]]] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        low = arg.lower()
        if low in KEYED and i + 1 < len(argv):
            settings[low] = argv[i + 1]
            i += 2
            continue
        if low in FILE_COMMANDS:
            commands.append((low, argv[i + 1 : i + 2]))
            i += 2
            continue
        if low == "-settings" and i + 1 < len(argv):
            if commands:
                commands[-1][1].extend(["-settings", argv[i + 1]])
            i += 2
            continue
        if low.startswith("/uc"):
            settings["/uc"] = arg[3:]
        elif low.startswith("/c") and low != "/checkconfig":
            settings["/c"] = arg[2:]
        elif low.startswith("/"):
            commands.append((low, []))
        elif low == "-notruncate" or not commands:
            settings[low] = "1"
        else:
            commands[-1][1].append(arg)
        i += 1
    return mode, settings, commands


def write_log(path: str | None, lines: list[str], append: bool) -> None:
    if not path:
        return
    out = Path(path)
    fresh = not append or not out.exists() or out.stat().st_size == 0
    text = "".join(line + "\r\n" for line in lines).encode("utf-8")
    with open(out, "wb" if not append else "ab") as f:
        f.write((b"\xef\xbb\xbf" if fresh else b"") + text)


def run(
    state: ClusterState, mode: str, s: dict[str, str], commands: list[tuple[str, list[str]]], log: list[str]
) -> None:
    data = state.read()
    if "/s" not in s:
        raise Failed("Не указана информационная база (/S)")
    ib_name = s["/s"].replace("/", "\\").split("\\")[-1]
    if not data["agent_up"]:
        raise Failed(f"Сервер 1С:Предприятия не обнаружен\nНе удалось подключиться к {s['/s']}")
    if ib_name not in data["infobases"]:
        raise Failed(f"Информационная база не обнаружена: {s['/s']}")
    ib = data["infobases"][ib_name]
    if ib["users"] and ib["users"].get(s.get("/n", "")) != s.get("/p", ""):
        raise Failed("Идентификация пользователя не выполнена")
    if ib["sessions_deny"] == "on" and s.get("/uc", "") != ib["permission_code"]:
        raise Failed(f"Начало сеанса с информационной базой запрещено. {ib['denied_message']}".strip())
    store = state.store(ib_name)
    if mode == "ENTERPRISE":
        if DATA_UPDATE in s.get("/c", ""):
            config = store.dump()["config"]
            if config["db_config_version"] != config["config_version"]:
                raise Failed("Конфигурация базы данных не соответствует сохраненной конфигурации.")
            store.set("data_version", config["config_version"])
            log.append("Обновление информационной базы выполнено успешно")
        return
    if mode != "DESIGNER":
        raise Failed(f"Неизвестный режим запуска: {mode}")
    for command, args in commands:
        words = [a for a in args if not a.startswith("-")]
        flags = [a.lower() for a in args]
        if command in FILE_COMMANDS and not words:
            raise Failed(f"Не указан файл для {command}")
        if command == "/dumpib":
            Path(words[0]).write_text(
                json.dumps(
                    {"format": "1c-double-dt", "infobase": ib_name, "content": store.dump()},
                    ensure_ascii=False,
                )
            )
            log.append("Выгрузка информационной базы успешно завершена")
        elif command == "/restoreib":
            if state.sessions(ib_name):
                raise Failed("Ошибка исключительной блокировки информационной базы.")
            dump = json.loads(Path(words[0]).read_text())
            if dump.get("format") != "1c-double-dt":
                raise Failed("Неверный формат файла выгрузки")
            store.restore(dump["content"])
            log.append("Загрузка информационной базы успешно завершена")
        elif command == "/updatecfg":
            cfu = json.loads(Path(words[0]).read_text())
            current = store.get("config_version")
            if not cfu.get("command_mode", True):
                raise Failed("Невозможно выполнение обновления конфигурации в командном режиме")
            if current not in cfu["from_versions"]:
                raise Failed("Файл не содержит доступных обновлений")
            if cfu.get("merge", True):
                store.set("config_version", cfu["version"])
                if cfu.get("config_errors"):  # the merged configuration does not compile
                    store.set("config_errors", "1")
            log.append("Обновление конфигурации успешно завершено")
        elif command == "/updatedbcfg":
            config = store.dump()["config"]
            if config["config_version"] == config["db_config_version"]:
                log.append("Обновление конфигурации базы данных не требуется")
                continue
            sessions = state.sessions(ib_name)
            if sessions and "force" not in flags:
                raise Failed(
                    "Ошибка блокировки информационной базы для обновления конфигурации базы данных\n"
                    + "\n".join(
                        f"Сеанс {x['session-id']}: {x['user-name']}, {x['app-id']}, {x['host']}"
                        for x in sessions
                    )
                )
            with state.edit() as d:
                d["sessions"] = [x for x in d["sessions"] if x["infobase"] != ib_name]
            store.set("db_config_version", config["config_version"])
            log.append("Обновление конфигурации базы данных успешно завершено")
        elif command == "/checkconfig":
            if ib.get("config_errors") or store.dump()["config"].get("config_errors") == "1":
                raise Failed("Обнаружены ошибки: Модуль ОбщегоНазначения(1,1): Ошибка компиляции", 101)
            log.append("Ошибок не обнаружено")


def main() -> int:
    mode, settings, commands = parse(sys.argv[1:])
    state = ClusterState(Path(os.environ.get("ONEC_DOUBLE_STATE", ".")))
    log: list[str] = []
    code = 0
    try:
        run(state, mode, settings, commands, log)
    except Failed as exc:
        log.extend(str(exc).splitlines())
        code = exc.code
    write_log(settings.get("/out"), log, append="-notruncate" in settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
