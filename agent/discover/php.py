"""Where PHP writes its errors (the ``php_fatals`` signal's log): PHP-FPM pool settings and
``php.ini``, read-only.

PHP-FPM: ``php_admin_value[error_log]`` / ``php_value[error_log]`` of the pools; php.ini:
``error_log``. Without either, PHP under Apache's mod_php writes to Apache's ``ErrorLog`` (the
caller's fallback).
"""

from __future__ import annotations

import re

from agent.discover.boxroot import BoxRoot

FPM_CONFIGS = (
    "/etc/php-fpm.conf", "/etc/php-fpm.d/*.conf", "/etc/php/*.conf",
    "/etc/php/*/fpm/php-fpm.conf", "/etc/php/*/fpm/pool.d/*.conf",
)
PHP_INIS = ("/etc/php.ini", "/etc/php.d/*.ini", "/etc/php/*/*/php.ini", "/etc/php/*/*/conf.d/*.ini")
_FPM_LOG = re.compile(r"^\s*php_(?:admin_)?value\[error_log\]\s*=\s*(.+?)\s*$", re.M)
_INI_LOG = re.compile(r"^\s*error_log\s*=\s*(.+?)\s*$", re.M)


def _values(root: BoxRoot, patterns: tuple[str, ...], regex: re.Pattern[str]) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        for path in root.glob(pattern):
            for raw in regex.findall(root.read_text(path) or ""):
                value = raw.split(";")[0].strip().strip("'\"")
                if value.startswith("/"):
                    found.append(root.box_path(value))
    return found


def fpm_error_logs(root: BoxRoot) -> list[str]:
    return list(dict.fromkeys(_values(root, FPM_CONFIGS, _FPM_LOG)))


def ini_error_logs(root: BoxRoot) -> list[str]:
    return list(dict.fromkeys(_values(root, PHP_INIS, _INI_LOG)))


def fpm_configs(root: BoxRoot) -> list[str]:
    return [p for pattern in FPM_CONFIGS for p in root.glob(pattern)]
