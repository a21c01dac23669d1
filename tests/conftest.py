"""Root conftest: the test-box fixtures (`box`, `box_1c`, `boxes`, `fresh_box`, `box_pool`) for
every test folder. See tests/README.md."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.boxes.pytest_plugin"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (tests/run.sh: ``-n 2 --dist loadfile``) whole files are handed to the
    workers in collection order: files with a ``slow`` test go first, so that a worker is not left
    with a several-minute file at the end while the other has nothing to do. A file's own tests
    keep their order; without ``-n`` nothing changes."""
    if not (getattr(config.option, "numprocesses", None) or hasattr(config, "workerinput")):
        return  # not under xdist (a worker has ``workerinput``: its collection is what is handed out)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within a file kept
