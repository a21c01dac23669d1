"""The ``log`` check: new matching lines per run judged against thresholds, the last one as the
summary; the three Bitrix uses (updater.log, PHP fatals, crashed MySQL tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.checks.base import Resources
from agent.checks.registry import build_check
from agent.config import parse
from agent.errors import ConfigError
from agent.report import Status


def log_check(tmp_path: Path, path: Path, save: bool = True, **keys: object):  # type: ignore[no-untyped-def]
    cfg = parse({"checks": [{"name": "log", "type": "log", "path": str(path), **keys}]})
    return build_check(cfg.checks[0], Resources(state_dir=tmp_path / "state", save_state=save))


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


UPD_ERROR_LINE = "2026-12-03 10:00:07 - UPD_ERROR - [main] Error installing update: SQL error in statement 2"
PHP_FATAL_LINE = ("[Thu Dec 03 10:00:00.123 2026] [php:error] [pid 1234] PHP Fatal error:  Uncaught Error: "
                  "Class \"Bitrix\\\\Main\\\\Missing\" not found in "
                  "/home/bitrix/www/bitrix/modules/main/lib/kernel.php:3")
CRASHED_LINE = ("2026-12-03 10:00:00 12 [ERROR] mariadbd: Table './sitemanager/b_event' is marked as "
                "crashed and should be repaired")


@pytest.mark.parametrize(("regex", "line"), [
    ("UPD_ERROR", UPD_ERROR_LINE), ("PHP Fatal error", PHP_FATAL_LINE), ("marked as crashed", CRASHED_LINE),
])
def test_the_bitrix_uses(tmp_path: Path, regex: str, line: str) -> None:
    path = tmp_path / "some.log"
    path.write_text("an old line that matches nothing we look for\n" + line + "\n")
    check = log_check(tmp_path, path, regex=regex)
    first = check.run(5)
    assert first.status is Status.OK and "from its end" in first.summary  # old lines never alert
    append(path, "noise\n" + line + "\n")
    result = check.run(5)
    assert result.status is Status.CRITICAL
    assert result.summary.startswith(f"1 new line matches {regex!r} in {path}; last: ")
    assert line.split()[-1] in result.summary
    assert check.run(5).status is Status.OK  # nothing new: OK again


def test_thresholds_count_this_runs_lines_and_not_regex_excludes(tmp_path: Path) -> None:
    path = tmp_path / "error_log"
    path.write_text("")
    check = log_check(tmp_path, path, regex="PHP Fatal error", not_regex="known_broken_widget",
                      warning=2, critical=4)
    check.run(5)
    append(path, "PHP Fatal error: a\nPHP Fatal error: in known_broken_widget.php\n")
    assert check.run(5).status is Status.OK  # 1 counted (one excluded), below warning
    append(path, "PHP Fatal error: b\nPHP Fatal error: c\n")
    result = check.run(5)
    assert result.status is Status.WARNING
    assert [p.value for p in result.perfdata if p.label == "matches"] == [2.0]
    append(path, "".join(f"PHP Fatal error: {i}\n" for i in range(5)))
    result = check.run(5)
    assert result.status is Status.CRITICAL
    assert result.details.splitlines()[-1] == "PHP Fatal error: 4"
    (sample,) = result.samples
    assert (sample.name, sample.value, sample.kind, sample.labels) == (
        "boxkeeper_log_matches_total", 8.0, "counter", {"check": "log"})


def test_a_long_line_is_trimmed_in_the_summary(tmp_path: Path) -> None:
    path = tmp_path / "updater.log"
    path.write_text("")
    check = log_check(tmp_path, path, regex="UPD_ERROR")
    check.run(5)
    append(path, "2026-12-03 10:00:00 - UPD_ERROR - " + "x" * 5000 + "\n")
    result = check.run(5)
    assert len(result.summary) < 500 and result.summary.endswith("…")


def test_check_runs_of_a_read_only_build_leave_the_agents_lines(tmp_path: Path) -> None:
    path = tmp_path / "updater.log"
    path.write_text("")
    agent = log_check(tmp_path, path, regex="UPD_ERROR")
    agent.run(5)
    append(path, "2026-12-03 10:00:00 - UPD_ERROR - boom\n")
    one_off = log_check(tmp_path, path, save=False, regex="UPD_ERROR")  # boxkeeper-agent check
    assert one_off.run(5).status is Status.CRITICAL
    assert agent.run(5).status is Status.CRITICAL  # the agent still sees it


def test_missing_and_unreadable(tmp_path: Path) -> None:
    absent = tmp_path / "absent.log"
    result = log_check(tmp_path, absent, regex="x").run(5)
    assert result.status is Status.UNKNOWN and "does not exist" in result.summary
    result = log_check(tmp_path, absent, regex="x", missing_ok=True).run(5)
    assert result.status is Status.OK and "nothing logged yet" in result.summary


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"checks\[0\].regex: expected a valid regular expression"):
        parse({"checks": [{"name": "l", "type": "log", "path": "/x", "regex": "("}]})
    with pytest.raises(ConfigError, match=r"checks\[0\].warning: expected a count not above critical"):
        parse({"checks": [{"name": "l", "type": "log", "path": "/x", "regex": "x", "warning": 5,
                           "critical": 2}]})
