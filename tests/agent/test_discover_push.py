"""``boxkeeper-agent discover --controller-url URL [--token-file F] [--listen ADDR]``: the config it
writes pushes to the controller (what ``boxkeeper hosts enroll`` asks of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load


def test_a_live_controller_section_with_the_token_file_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "box"
    root.mkdir()
    out = tmp_path / "agent.yaml"
    code = main(["discover", "--root", str(root), "--host", "h1", "--paths-under-root",
                 "--controller-url", "https://boxkeeper.example.org", "--listen", "127.0.0.5:9999",
                 "--write", str(out)])
    assert code == 0
    cfg = load(str(out))
    assert cfg.controller is not None
    assert cfg.controller.url == "https://boxkeeper.example.org"
    assert str(cfg.controller.token_file) == f"{root}/etc/boxkeeper/agent.token"
    assert "#controller:" not in out.read_text()
    assert "listen: 127.0.0.5:9999" in out.read_text()


def test_without_a_controller_url_the_section_stays_commented_out(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--root", str(tmp_path), "--host", "h1"]) == 0
    text = capsys.readouterr().out
    assert "#controller:\n#  url: https://boxkeeper.example.org" in text
    assert "\ncontroller:" not in text


def test_a_token_file_without_a_controller_url_is_a_usage_error(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--root", str(tmp_path), "--token-file", "/etc/t"]) == 2
    assert "--token-file goes with --controller-url" in capsys.readouterr().err
