"""The token file must be private, present and non-empty; otherwise the agent says how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import TokenFileError
from agent.token import read_token


def token_file(tmp_path: Path, text: str, mode: int) -> Path:
    path = tmp_path / "agent.token"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_private_token_is_read_without_the_newline(tmp_path: Path) -> None:
    assert read_token(token_file(tmp_path, "abc123\n", 0o600)) == "abc123"
    assert read_token(token_file(tmp_path, "abc123", 0o400)) == "abc123"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_world_readable_token_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = token_file(tmp_path, "abc123\n", mode)
    with pytest.raises(TokenFileError) as err:
        read_token(path)
    assert f"chmod 600 {path}" in str(err.value)
    assert f"{mode:04o}" in str(err.value)
    assert "abc123" not in str(err.value)


def test_missing_empty_or_multiline_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist"):
        read_token(tmp_path / "nope")
    with pytest.raises(TokenFileError, match="empty"):
        read_token(token_file(tmp_path, "\n  \n", 0o600))
    with pytest.raises(TokenFileError, match="one line") as err:
        read_token(token_file(tmp_path, "abc\ndef\n", 0o600))
    assert "abc" not in str(err.value).replace(str(tmp_path), "")


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = token_file(tmp_path, "abc123\n", 0o600)
    link = tmp_path / "link.token"
    link.symlink_to(target)
    with pytest.raises(TokenFileError, match="cannot be read"):
        read_token(link)
