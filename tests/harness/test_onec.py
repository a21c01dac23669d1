"""The 1C TEST DOUBLES (rac, 1cv8 DESIGNER) on a --with-1c box reproduce DOMAIN.md's behaviours,
with the infobase content in the box's real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.boxes import Box
from tests.boxes.doubles.state import ClusterState
from tests.boxes.remote import Result, run

pytestmark = pytest.mark.integration
LOGIN = '/S "onec-srv\\buh" /N Администратор /P secret /DisableStartupDialogs /DisableStartupMessages'
BOM = "\ufeff"


def _state(box: Box) -> ClusterState:
    return ClusterState(Path(box.info.docroot).parents[2] / "var/lib/1c-double")


def _root(box: Box) -> Path:
    return Path(box.info.docroot).parents[2]


def _designer(box: Box, args: str) -> tuple[Result, str]:
    out = _root(box) / "1c-out.txt"
    res = run(box.info, f"rm -f {out}; 1cv8 DESIGNER {LOGIN} /Out {out} {args}; echo rc=$?")
    raw = Path(out).read_bytes().decode("utf-8") if Path(out).exists() else ""
    return res, raw


def _rc(res: Result) -> int:
    return int(res.stdout.strip().rsplit("rc=", 1)[1])


def _updates(box: Box) -> Path:
    return _state(box).dir / "updates"


def _pg_config(box: Box) -> dict[str, str]:
    pg = box.info.pg
    assert pg is not None
    with psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname="buh"
    ) as conn:
        return dict(conn.execute("SELECT key, value FROM config").fetchall())


def test_pg_is_real_and_runs_as_postgres(box_1c: Box) -> None:
    assert box_1c.info.pg is not None
    assert _pg_config(box_1c)["config_version"] == "3.1.9.200"
    root = Path(box_1c.info.docroot).parents[2]
    assert (root / "var/lib/postgresql/data").stat().st_uid != 0


def test_rac_lists_and_locks(box_1c: Box) -> None:
    cluster = run(box_1c.info, "rac cluster list").stdout.split("\n")[0].split(":")[1].strip()
    ib = (
        run(box_1c.info, f"rac infobase --cluster={cluster} summary list")
        .stdout.split("\n")[0]
        .split(":")[1]
        .strip()
    )
    auth = "--infobase-user=Администратор --infobase-pwd=secret"
    lock = run(
        box_1c.info,
        f"rac infobase --cluster={cluster} update --infobase={ib} {auth} --sessions-deny=on "
        "--scheduled-jobs-deny=on --permission-code=UPD123",
    )
    assert lock.exit_code == 0
    info = run(box_1c.info, f"rac infobase --cluster={cluster} info --infobase={ib} {auth}").stdout
    assert "sessions-deny        : on" in info and "scheduled-jobs-deny  : on" in info and '"UPD123"' in info
    denied = run(
        box_1c.info,
        f"rac infobase --cluster={cluster} info --infobase={ib} --infobase-user=x --infobase-pwd=y",
    )
    assert denied.exit_code == 1 and "Недостаточно прав" in denied.stderr
    missing = run(
        box_1c.info,
        f"rac infobase --cluster={cluster} info --infobase=00000000-0000-0000-0000-000000000000 {auth}",
    )
    assert missing.exit_code == 1 and "Информационная база не найдена" in missing.stderr
    sid = _state(box_1c).add_session(user="Бухгалтер")
    listed = run(box_1c.info, f"rac session --cluster={cluster} list --infobase={ib}").stdout
    assert sid in listed and "app-id" in listed and "blocked-by-dbms" in listed
    assert run(box_1c.info, f"rac session --cluster={cluster} terminate --session={sid}").exit_code == 0
    assert (
        run(box_1c.info, f"rac session --cluster={cluster} terminate --session={sid}").exit_code == 0
    )  # missing: 0
    assert sid not in run(box_1c.info, f"rac session --cluster={cluster} list").stdout
    procs_out = run(box_1c.info, f"rac process --cluster={cluster} list").stdout
    assert "memory-size" in procs_out and "available-perfomance" in procs_out


def test_rac_agent_down(box_1c: Box) -> None:
    box_1c.fault("1c-agent-down")
    res = run(box_1c.info, "rac cluster list")
    assert res.exit_code != 0 and "Агент кластера недоступен" in res.stderr
    box_1c.fault("1c-agent-down", undo=True)
    assert run(box_1c.info, "rac cluster list").exit_code == 0


def test_out_log_is_utf8_bom_crlf_and_dump_restore(box_1c: Box) -> None:
    res, log = _designer(box_1c, "/DumpIB $BOX_ROOT/buh.dt")
    assert _rc(res) == 0
    assert log == BOM + "Выгрузка информационной базы успешно завершена\r\n"
    sid = _state(box_1c).add_session()
    res, log = _designer(box_1c, "/RestoreIB $BOX_ROOT/buh.dt -SessionTerminate force")
    assert _rc(res) == 1 and "Ошибка исключительной блокировки информационной базы." in log
    _state(box_1c).add_session()  # still there, and one more
    assert len(_state(box_1c).sessions("buh")) == 2 and sid
    for s in _state(box_1c).sessions():
        run(
            box_1c.info,
            f"rac session --cluster={_state(box_1c).read()['cluster']} terminate --session={s['session']}",
        )
    res, log = _designer(box_1c, "/RestoreIB $BOX_ROOT/buh.dt")
    assert _rc(res) == 0 and "Загрузка информационной базы успешно завершена" in log


def test_update_cfg_then_db_cfg(box_1c: Box) -> None:
    upd = _updates(box_1c)
    res, log = _designer(box_1c, f"/UpdateCfg {upd}/3.1.11.50/1cv8.cfu")
    assert _rc(res) == 1 and "Файл не содержит доступных обновлений" in log
    res, log = _designer(box_1c, f"/UpdateCfg {upd}/3.1.10.100-interactive-only/1cv8.cfu")
    assert _rc(res) == 1 and "Невозможно выполнение обновления конфигурации в командном режиме" in log
    res, log = _designer(box_1c, f"/UpdateCfg {upd}/3.1.10.100-nothing-merged/1cv8.cfu")
    assert _rc(res) == 0 and "Обновление конфигурации успешно завершено" in log
    assert _pg_config(box_1c)["config_version"] == "3.1.9.200"  # rc 0, nothing merged
    res, log = _designer(box_1c, f"/UpdateCfg {upd}/3.1.10.100/1cv8.cfu")
    assert _rc(res) == 0
    assert _pg_config(box_1c) == {
        "config_version": "3.1.10.100",
        "db_config_version": "3.1.9.200",
        "data_version": "3.1.9.200",
    }
    _state(box_1c).add_session(user="Кладовщик")
    res, log = _designer(box_1c, "/UpdateDBCfg")
    assert _rc(res) == 1 and "Кладовщик" in log
    res, log = _designer(box_1c, "/UpdateDBCfg -SessionTerminate force")
    assert _rc(res) == 0 and _pg_config(box_1c)["db_config_version"] == "3.1.10.100"
    assert _state(box_1c).sessions("buh") == []
    data = run(box_1c.info, f'1cv8c ENTERPRISE {LOGIN} /C"ЗапуститьОбновлениеИнформационнойБазы"')
    assert data.exit_code == 0
    assert _pg_config(box_1c)["data_version"] == "3.1.10.100"


def test_check_config_and_locked_infobase(box_1c: Box) -> None:
    res, log = _designer(box_1c, "/CheckConfig")
    assert _rc(res) == 0
    with _state(box_1c).edit() as data:
        data["infobases"]["buh"]["config_errors"] = True
        data["infobases"]["buh"]["sessions_deny"] = "on"
        data["infobases"]["buh"]["permission_code"] = "UPD123"
    res, log = _designer(box_1c, "/CheckConfig")
    assert _rc(res) == 1 and log.strip("\ufeff\r\n") == ""  # refused; no documented message
    res, log = _designer(box_1c, "/UC UPD123 /CheckConfig")
    assert _rc(res) == 101


def test_wrong_password(box_1c: Box) -> None:
    res = run(
        box_1c.info,
        '1cv8 DESIGNER /S "onec-srv\\buh" /N Администратор /P wrong /Out $BOX_ROOT/w.txt /CheckConfig',
    )
    assert res.exit_code == 1  # refused (DOMAIN.md documents no message for it: the double prints none)
    assert (_root(box_1c) / "w.txt").read_text(encoding="utf-8-sig") == ""
