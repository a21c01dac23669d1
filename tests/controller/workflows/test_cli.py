"""``boxkeeper update run | runs | hosts trust | hosts unquarantine`` end to end on a test box."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from tests.boxes.box import Box
from tests.controller.workflows.boxkit import bitrix_vars, portal_version

pytestmark = pytest.mark.integration


def write_config(box: Box, tmp_path: Path) -> Path:
    config = {
        "state_dir": str(tmp_path / "state"),
        "database": f"sqlite:///{tmp_path}/state/boxkeeper.db",
        "clients": [
            {
                "name": "acme",
                "hosts": [
                    {
                        "name": box.name,
                        "portal_url": box.info.portal_url,
                        "ssh": {
                            "address": f"{box.info.address}:{box.info.ssh_port}",
                            "user": box.info.ssh_user,
                            "key_file": box.info.ssh_key,
                        },
                    }
                ],
            }
        ],
    }
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def var_args(box: Box, **extra: str) -> list[str]:
    args: list[str] = []
    for key, value in bitrix_vars(box, **extra).items():
        if key != "portal_url":  # comes from the host's config
            args += ["--var", f"{key}={value}"]
    return args


def test_trust_then_update_then_runs(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = str(write_config(box, tmp_path))
    # Not trusted yet: refused before anything runs on the host.
    assert (
        main(["--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name, *var_args(box)])
        == 1
    )
    assert "no pinned host key" in capsys.readouterr().out

    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    assert main(["--config", cfg, "hosts", "trust", box.name]) == 1
    out = capsys.readouterr().out
    assert box.info.host_key_fingerprint in out and "not trusted" in out
    assert main(["--config", cfg, "hosts", "trust", box.name, "--yes"]) == 0
    assert (tmp_path / "state/known_hosts").exists()
    capsys.readouterr()

    # Dry run: preflight only.
    box.stage("good")
    assert (
        main(
            [
                "--config",
                cfg,
                "update",
                "run",
                "bitrix-modules-update",
                "--host",
                box.name,
                "--dry-run",
                *var_args(box),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "SUCCEEDED (dry run" in out and "== PREFLIGHT → SUCCEEDED" in out
    assert portal_version(box) == (200, "25.100.200")

    assert (
        main(["--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name, *var_args(box)])
        == 0
    )
    assert f"run 3: bitrix-modules-update on {box.name}: SUCCEEDED" in capsys.readouterr().out
    assert portal_version(box) == (200, "25.100.300")

    assert main(["--config", cfg, "runs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["state"], r["dry_run"]) for r in listed] == [
        (3, "SUCCEEDED", False),
        (2, "SUCCEEDED", True),
        (1, "FAILED", False),
    ]
    assert main(["--config", cfg, "runs", "show", "3"]) == 0
    shown = capsys.readouterr().out
    assert "ok     update/update modules" in shown and "VERIFY → SUCCEEDED" in shown
    assert main(["--config", cfg, "runs", "show", "99"]) == 1


def test_rolled_back_and_quarantined_exit_codes(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(write_config(box, tmp_path))
    assert main(["--config", cfg, "hosts", "trust", box.name, "--yes"]) == 0
    box.stage("broken-fatal")
    assert (
        main(["--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name, *var_args(box)])
        == 4
    )
    assert "ROLLED BACK: this is a failure" in capsys.readouterr().out

    # A rollback that cannot restart the backend: quarantine, and no automation until cleared.
    box.stage("good")
    assert (
        main(
            [
                "--config",
                cfg,
                "update",
                "run",
                "bitrix-modules-update",
                "--host",
                box.name,
                *var_args(box),
                "--var",
                "web_restart=false",
            ]
        )
        == 5
    )
    capsys.readouterr()
    assert (
        main(["--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name, *var_args(box)])
        == 3
    )
    assert "unquarantine" in capsys.readouterr().err
    assert main(["--config", cfg, "hosts", "unquarantine", box.name]) == 0
    assert main(
        [
            "--config",
            cfg,
            "update",
            "run",
            "bitrix-modules-update",
            "--host",
            box.name,
            "--dry-run",
            *var_args(box),
        ]
    ) in (0, 1)  # allowed to run again (preflight decides)


def test_bad_var_is_a_config_error(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(box, tmp_path))
    assert (
        main(
            [
                "--config",
                cfg,
                "update",
                "run",
                "bitrix-modules-update",
                "--host",
                box.name,
                "--var",
                "update_timeout=soon",
            ]
        )
        == 2
    )
    assert "update_timeout: expected an integer" in capsys.readouterr().err
    assert main(["--config", cfg, "update", "run", "bitrix-modules-update", "--host", "nope"]) == 2


def test_a_described_host_needs_no_var(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Everything the playbook needs is in the host's entry of the controller config (vars:), the
    portal pages are requested from the box itself (probe_from: host): `update run` with no --var."""
    path = write_config(box, tmp_path)
    config = yaml.safe_load(path.read_text())
    host = config["clients"][0]["hosts"][0]
    host["vars"] = {**{k: v for k, v in bitrix_vars(box).items() if k != "portal_url"}, "probe_from": "host"}
    host["vars"]["update_timeout"] = 30
    path.write_text(yaml.safe_dump(config))
    cfg = str(path)
    assert main(["--config", cfg, "hosts", "trust", box.name, "--yes"]) == 0
    box.stage("good")
    capsys.readouterr()
    argv = ["--config", cfg, "update", "run", "bitrix-modules-update", "--host", box.name, "--json"]
    assert main(argv) == 0  # no --var
    run = json.loads(capsys.readouterr().out)
    assert run["state"] == "SUCCEEDED"
    assert portal_version(box) == (200, "25.100.300")
    probes = [e for e in run["timeline"] if e["kind"] == "http"]
    assert [p["name"] for p in probes] == ["portal answers", "portal admin page (public part still closed)",
                                           "portal home page"]
    assert all(p["command"].endswith("(from the host, curl)") and p["exit_code"] == 200 for p in probes)
    assert probes[0]["command"] == f"GET {box.info.portal_url} (from the host, curl)"
