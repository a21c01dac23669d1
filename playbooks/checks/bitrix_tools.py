"""testinfra checks run by bitrix-modules-update.yaml's preflight: the tools the playbook uses exist.

One remote command per test: each testinfra command is a new SSH connection.
"""

from __future__ import annotations

from typing import Any

TOOLS = ["php", "mysql", "mysqldump", "gzip", "zcat", "tar", "sed", "timeout", "df", "du", "find", "sudo"]


def test_tools_are_installed_and_php_has_mysqli(host: Any) -> None:
    script = " ".join(f"command -v {tool} >/dev/null || echo missing:{tool};" for tool in TOOLS)
    result = host.run(script + " php -m | grep -qx mysqli || echo missing:php-mysqli")
    assert result.rc == 0
    assert result.stdout.split() == [], f"not on the PATH of the SSH user: {result.stdout.split()}"
