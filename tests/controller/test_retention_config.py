"""The ``retention:`` section of the controller config, and the hour arithmetic of the summaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import load, parse
from controller.errors import ConfigError
from controller.retention import HOUR, hour_parts

H0 = 1_764_302_400  # an hour's start (a multiple of 3600)
DAY = 86400.0


@pytest.mark.parametrize(("raw", "message"), [
    ({"raw_reports": "10m"}, "retention.raw_reports: expected a duration of at least 1h"),
    ({"raw_reports": "a week"},
     "retention.raw_reports: expected a duration such as 10s, 5m or 1h, got 'a week'"),
    ({"summaries": "3d"}, "retention.summaries: expected a duration longer than raw_reports (604800 s)"),
    ({"batch": 0}, "retention.batch: expected an integer from 10 to 100000, got 0"),
    ({"batch": "500"}, "retention.batch: expected an integer from 10 to 100000, got '500'"),
    ({"enabled": "no"}, "retention.enabled: expected true or false, got 'no'"),
    ({"raw": "7d"}, "retention.raw: expected no such key"),
])
def test_retention_config_errors_name_the_file_the_key_and_what_was_expected(
    tmp_path: Path, raw: dict[str, Any], message: str,
) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump({"retention": raw}))
    with pytest.raises(ConfigError) as caught:
        load(path, environ={})
    assert str(caught.value).startswith(f"{path}: {message}")


def test_retention_defaults_keep_a_week_of_reports_and_400_days_of_summaries() -> None:
    cfg = parse({}, "c.yaml").retention
    assert cfg.enabled and cfg.raw_reports == 7 * DAY and cfg.summaries == 400 * DAY
    assert parse({"retention": {"raw_reports": "2d", "summaries": "800d"}}, "c.yaml").retention.summaries \
        == 800 * DAY


def test_hour_parts_split_a_span_at_hour_boundaries() -> None:
    assert list(hour_parts(H0 + 3590, H0 + 3605)) == [(H0, 10), (H0 + HOUR, 5)]
    assert list(hour_parts(H0 + 10, H0 + 7210)) == [(H0, 3590), (H0 + HOUR, 3600), (H0 + 2 * HOUR, 10)]
    assert list(hour_parts(H0, H0)) == []
