"""Test boxes: real servers on 127.0.0.x that look like a client's Bitrix (and 1C) server.

See tests/README.md. Entry points: `python -m tests.boxes ...` (cli.py), the pytest fixtures in
pytest_plugin.py, and `Box` / `BoxInfo` for code.
"""

from .box import Box
from .info import BoxInfo, DbInfo, PgInfo

__all__ = ["Box", "BoxInfo", "DbInfo", "PgInfo"]
