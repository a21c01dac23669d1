"""The controller token: read once at start from ``controller.token_file``.

The file must exist, hold one non-empty line, and be readable by its owner only
(``mode & 0o077 == 0``, i.e. 0600 or 0400): the token lets anyone push reports as this box.
Otherwise :class:`~agent.errors.TokenFileError` says what is wrong and how to fix it, and the
agent refuses to start (exit 2). The token itself never appears in a message or a log line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.errors import SecretFileError, TokenFileError


def read_secret_file(path: Path, *, what: str, missing_hint: str,
                     error: type[SecretFileError] = SecretFileError) -> str:
    """The text of a file holding a secret (the controller token, a database password), after
    checking that it is a regular file readable by its owner only (``mode & 0o077 == 0``). Raises
    ``error`` naming ``what`` ("token file", "password file") and saying how to fix it; the secret
    itself never appears in a message."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # novm
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist; {missing_hint}") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is not a regular file")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise error(f"{what} {path} is readable by group or others (mode {mode:04o}); "
                        f"run: chmod 600 {path}")
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text") from None


def read_token(path: Path) -> str:
    text = read_secret_file(
        path, what="token file", error=TokenFileError,
        missing_hint=f"put the token the controller gave for this host there (one line) and run: "
                     f"chmod 600 {path}",
    )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise TokenFileError(f"token file {path} is empty; put the controller's token for this host in it")
    if len(lines) > 1 or any(c.isspace() for c in lines[0]):
        raise TokenFileError(f"token file {path} must hold the token alone, on one line")
    return lines[0]
