"""Secret files of the notification channels: read when a channel is built, refused when others may
read them. The values are masked everywhere by :mod:`controller.redact`."""

from __future__ import annotations

import stat
from pathlib import Path

from controller.errors import ConfigError


def read_secret(path: Path, *, source: str, key: str) -> str:
    """The stripped content of a secret file. ConfigError when missing, empty or world-readable."""
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(source, key, "a readable secret file", f"{path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            source, key, f"a file not readable by others (chmod 600 {path})", f"mode {stat.filemode(mode)}"
        )
    if not value:
        raise ConfigError(source, key, "a non-empty secret file", str(path))
    return value
