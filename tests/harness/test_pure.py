"""Fast checks of the harness's pure parts (no servers)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.boxes.cron_runner import lines
from tests.boxes.doubles.designer import parse, write_log
from tests.boxes.doubles.rac import records
from tests.boxes.doubles.state import make_update
from tests.boxes.layout import FIRST_INDEX, LAST_INDEX, BoxLayout


def test_every_box_gets_its_own_address_and_ports() -> None:
    layouts = [BoxLayout(Path("/s"), i) for i in range(FIRST_INDEX, LAST_INDEX + 1)]
    endpoints = [
        (lay.address, port)
        for lay in layouts
        for port in (lay.ssh_port, lay.http_port, lay.db_port, lay.pg_port)
    ]
    assert len(set(endpoints)) == len(endpoints)
    ports = [lay.ssh_port for lay in layouts] + [lay.http_port for lay in layouts]
    assert len(set(ports)) == len(ports)  # distinct even against a wildcard listener
    assert BoxLayout(Path("/s"), 11).docroot == Path("/s/box11/home/bitrix/www")


def test_cron_runs_only_uncommented_every_minute_lines(tmp_path: Path) -> None:
    (tmp_path / "etc/cron.d").mkdir(parents=True)
    (tmp_path / "etc/cron.d/bx_portal").write_text(
        "# comment\n* * * * * bitrix php -f /x/cron_events.php\n#* * * * * bitrix paused\n"
        "0 3 * * * root nightly.sh\nSHELL=/bin/sh\n"
    )
    assert lines(tmp_path) == [("bitrix", "php -f /x/cron_events.php")]


def test_designer_command_line_with_absolute_paths() -> None:
    mode, settings, commands = parse(
        [
            "DESIGNER",
            "/S",
            "srv\\buh",
            "/N",
            "Администратор",
            "/P",
            "secret",
            "/UCUPD1",
            "/Out",
            "/tmp/o.txt",
            "-NoTruncate",
            "/UpdateCfg",
            "/cfg/1cv8.cfu",
            "/UpdateDBCfg",
            "-Dynamic-",
            "-SessionTerminate",
            "force",
        ]
    )
    assert mode == "DESIGNER"
    assert settings == {
        "/s": "srv\\buh",
        "/n": "Администратор",
        "/p": "secret",
        "/uc": "UPD1",
        "/out": "/tmp/o.txt",
        "-notruncate": "1",
    }
    assert commands == [
        ("/updatecfg", ["/cfg/1cv8.cfu"]),
        ("/updatedbcfg", ["-Dynamic-", "-SessionTerminate", "force"]),
    ]


def test_out_log_bom_once_and_crlf(tmp_path: Path) -> None:
    out = tmp_path / "log.txt"
    write_log(str(out), ["первая"], append=False)
    write_log(str(out), ["вторая"], append=True)
    assert out.read_bytes() == b"\xef\xbb\xbf" + "первая\r\nвторая\r\n".encode()


def test_rac_records_are_aligned_key_value_blocks() -> None:
    text = records([{"session": "a", "app-id": "1CV8C"}, {"session": "b", "app-id": "Designer"}])
    assert text == "session : a\napp-id  : 1CV8C\n\nsession : b\napp-id  : Designer\n"


def test_update_dir_like_the_vendors(tmp_path: Path) -> None:
    make_update(tmp_path, "3.1.10.100", ["3.1.9.200", "3.1.9.190"])
    assert "FromVersions=;3.1.9.200;3.1.9.190;" in (tmp_path / "UpdInfo.txt").read_text()
    assert json.loads((tmp_path / "1cv8.cfu").read_text())["version"] == "3.1.10.100"
    assert (tmp_path / "1cv8.mft").exists()
