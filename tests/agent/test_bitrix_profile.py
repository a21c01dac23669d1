"""The ``bitrix:`` block of the agent config: its exact shape expands into one check per site and
signal, named and labelled by site, with errors that name the key in the block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.checks.bitrix.profile import SIGNALS
from agent.config import load, parse
from agent.errors import ConfigError

SHAPE = """
bitrix:
  - docroot: /home/bitrix/www          # one item per site
    site: default                      # optional
    interval: 1m                       # optional
    signals:                           # optional
      licence: {warning_days: 30, critical_days: 7}
      agents: {max_lag: 15m}
      php_fatals: {log: /var/log/httpd/error_log}
      push_server: false               # false turns a signal off
"""


def names(cfg: Any) -> list[str]:
    return [c.name for c in cfg.checks]


def test_the_shape_from_the_issue(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(SHAPE)
    cfg = load(path, environ={})
    assert names(cfg) == ["bitrix-mysql", "bitrix-licence", "bitrix-agents", "bitrix-mail_queue",
                          "bitrix-backup", "bitrix-updates", "bitrix-site_checker", "bitrix-php_fatals"]
    by_name = {c.name: c for c in cfg.checks}
    assert {c.interval for c in cfg.checks} == {60.0}
    assert by_name["bitrix-agents"].max_lag == 900.0  # type: ignore[attr-defined]
    assert by_name["bitrix-php_fatals"].log == "/var/log/httpd/error_log"  # type: ignore[attr-defined]
    assert by_name["bitrix-mysql"].settings_from == "/home/bitrix/www"  # type: ignore[attr-defined]
    assert {getattr(c, "site", "default") for c in cfg.checks} == {"default"}


def test_every_signal_with_its_own_interval_when_the_item_gives_none() -> None:
    cfg = parse({"bitrix": [{"docroot": "/home/bitrix/www"}]})
    assert [c.type for c in cfg.checks] == ["mysql", "bitrix_licence", "bitrix_agents", "bitrix_mail_queue",
                                            "bitrix_backup", "bitrix_updates", "bitrix_site_checker",
                                            "bitrix_php_fatals", "bitrix_push_server"]
    intervals = {c.name: c.interval for c in cfg.checks}
    assert intervals == {"bitrix-mysql": 60, "bitrix-licence": 3600, "bitrix-agents": 60,
                         "bitrix-mail_queue": 60, "bitrix-backup": 600, "bitrix-updates": 60,
                         "bitrix-site_checker": 3600, "bitrix-php_fatals": 60, "bitrix-push_server": 60}
    assert set(SIGNALS) == {"mysql", "licence", "agents", "mail_queue", "backup", "updates", "site_checker",
                            "php_fatals", "push_server"}


def test_a_signals_own_keys_win_over_the_items() -> None:
    cfg = parse({"bitrix": [{"docroot": "/home/bitrix/www", "interval": "5m",
                             "signals": {"agents": {"interval": "30s", "retries": 2}, "licence": True,
                                         "backup": None}}]})
    by_name = {c.name: c for c in cfg.checks}
    assert by_name["bitrix-agents"].interval == 30 and by_name["bitrix-agents"].retries == 2
    assert by_name["bitrix-licence"].interval == 300 and by_name["bitrix-backup"].interval == 300


def test_several_sites_each_with_their_own_checks_and_label() -> None:
    cfg = parse({"bitrix": [
        {"docroot": "/home/bitrix/www", "signals": {"push_server": False}},
        {"docroot": "/home/bitrix/ext_www/shop.example.org", "signals": {"push_server": False}},
        {"docroot": "/srv/portal", "site": "b24"},
    ], "checks": [{"name": "portal", "type": "tcp", "address": "127.0.0.1:80"}]})
    got = names(cfg)
    assert got[0] == "portal"
    assert {"bitrix-licence", "bitrix-licence-shop.example.org", "bitrix-licence-b24"} <= set(got)
    assert len(got) == 1 + 8 + 8 + 9
    sites = {c.name: getattr(c, "site", None) for c in cfg.checks}
    assert sites["bitrix-agents-shop.example.org"] == "shop.example.org"
    assert sites["bitrix-agents-b24"] == "b24"


@pytest.mark.parametrize(("block", "key", "expected"), [
    ([{"docroot": "/home/bitrix/www", "signals": {"agents": {"max_lag": "soon"}}}],
     "bitrix[0].signals.agents.max_lag", "a duration such as 10s, 5m or 1h"),
    ([{"docroot": "/home/bitrix/www", "signals": {"licence": {"warning_days": 5, "critical_days": 7}}}],
     "bitrix[0].signals.licence.critical_days", "a number of days not above warning_days"),
    ([{"docroot": "/home/bitrix/www", "signals": {"licence": {"warn_days": 5}}}],
     "bitrix[0].signals.licence.warn_days", "no such key; expected one of critical_days, docroot,"),
    ([{"docroot": "/home/bitrix/www", "signals": {"licenses": {}}}],
     "bitrix[0].signals.licenses", "a signal: one of mysql, licence, agents,"),
    ([{"docroot": "/home/bitrix/www", "signals": {"agents": "yes"}}],
     "bitrix[0].signals.agents", "a mapping of the signal's options, true or false"),
    ([{"docroot": "/home/bitrix/www", "signals": {"agents": {"docroot": "/x"}}}],
     "bitrix[0].signals.agents.docroot",
     "no such key in a signal (docroot and site are set on the site item)"),
    ([{"docroot": "/srv/portal"}], "bitrix[0].site", "a site name (required when the docroot is not"),
    ([{"site": "x"}], "bitrix[0].docroot", "a non-empty string (required)"),
    ([{"docroot": "/home/bitrix/www", "sites": "x"}], "bitrix[0].sites",
     "no such key; expected one of docroot,"),
    ([{"docroot": "/home/bitrix/www"}, {"docroot": "/srv/www", "site": "default"}],
     "bitrix[1].site", "a site name no other item has (bitrix[0] is 'default' too)"),
    ([{"docroot": "/home/bitrix/www", "site": "bad name"}], "bitrix[0].site", "a name of letters"),
    ({"docroot": "/home/bitrix/www"}, "bitrix", "a list of sites"),
])
def test_errors_name_the_key_in_the_block(block: object, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse({"bitrix": block}, source="agent.yaml")
    assert err.value.key == key
    assert err.value.expected.startswith(expected), err.value.expected
    assert str(err.value).startswith(f"agent.yaml: {key}: expected ")


def test_a_check_named_like_an_expanded_one_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"checks": [{"name": "bitrix-agents", "type": "tcp", "address": "127.0.0.1:1"}],
               "bitrix": [{"docroot": "/home/bitrix/www"}]})
    assert err.value.key == "checks[0].name"


def test_state_dir_default_file_and_environment(tmp_path: Path) -> None:
    assert str(parse({}).state_dir) == "/var/lib/boxkeeper/state"
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "from-file")}))
    assert load(path, environ={}).state_dir == tmp_path / "from-file"
    assert load(path, environ={"BOXKEEPER_AGENT_STATE_DIR": "/srv/state"}).state_dir == Path("/srv/state")
