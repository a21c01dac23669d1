"""The shipped Prometheus alerting rules (config/prometheus/): valid, every alert unit-tested with
`promtool test rules`, and every series they read is one boxkeeper exposes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[1] / "config" / "prometheus"
RULES = RULES_DIR / "boxkeeper-rules.yml"
TESTS = RULES_DIR / "boxkeeper-rules.test.yml"
SOURCES = [Path(__file__).resolve().parents[1] / d for d in ("agent", "controller")]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120,
                           check=False)


def _alerts() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_the_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = [case for test in yaml.safe_load(TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test["alert_rule_test"]]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert}: no case where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{alert}: no case where it stays quiet"


def test_every_series_the_rules_read_is_exposed_by_boxkeeper() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for d in SOURCES for p in d.rglob("*.py"))
    for alert, expr in _alerts().items():
        for name in set(re.findall(r"\bboxkeeper_[a-z_]+", expr)):
            base = name.removesuffix("_total")
            assert f'"{name}"' in code or f'"{base}"' in code, f"{alert} reads {name}, which nothing exposes"
