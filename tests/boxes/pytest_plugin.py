"""pytest fixtures for test boxes (registered by tests/conftest.py).

box          a clean box for this test: taken from the session's pool and reset to pristine
             (faults undone, servers running, stray processes killed, files and DB restored)
box_1c       the same, for a box started with --with-1c (PostgreSQL + 1C doubles)
boxes        a factory: `boxes(3)` -> three clean pooled boxes for this test
fresh_box    a brand-new box of its own, taken down after the test (for tests that break a
             box beyond what `reset` repairs, or that take it down themselves)
box_pool     the session's pool (started lazily; every box is taken down at session end)
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from . import procs
from .box import Box, prepare
from .fleet import ensure_state_dir


class BoxPool:
    """Boxes shared by the tests of a session; each is reset before a test gets it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.free: list[Box] = []
        self.all: list[Box] = []
        self._lock = threading.Lock()
        self._prepared = False

    def _new(self, count: int, with_1c: bool) -> list[Box]:
        if not self._prepared:
            procs.become_subreaper()
            prepare()
            if with_1c:
                from . import postgres

                postgres.template()
            self._prepared = True
        if with_1c:
            from . import postgres

            postgres.template()
        with ThreadPoolExecutor(max_workers=count) as pool:
            created = list(pool.map(lambda _: Box.create(self.state_dir, with_1c=with_1c), range(count)))
        with self._lock:
            self.all.extend(created)
        return created

    def acquire(self, count: int = 1, *, with_1c: bool = False) -> list[Box]:
        with self._lock:
            taken = [b for b in self.free if b.with_1c == with_1c][:count]
            for b in taken:
                self.free.remove(b)
        ready: list[Box] = []
        for box in taken:
            try:
                box.reset()
                ready.append(box)
            except Exception:
                self.discard(box)
        if len(ready) < count:
            ready.extend(self._new(count - len(ready), with_1c))
        return ready

    def release(self, boxes: list[Box]) -> None:
        with self._lock:
            self.free.extend(boxes)

    def discard(self, box: Box) -> None:
        box.down()
        with self._lock:
            if box in self.all:
                self.all.remove(box)

    def fresh(self, *, with_1c: bool = False) -> Box:
        box = self._new(1, with_1c)[0]
        return box

    def close(self) -> None:
        for box in list(self.all):
            box.down()
        procs.reap_children()
        shutil.rmtree(self.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def box_pool() -> Iterator[BoxPool]:
    state_dir = ensure_state_dir(Path(tempfile.mkdtemp(prefix="bxp-", dir="/tmp")), with_1c=True)
    pool = BoxPool(state_dir)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def box(box_pool: BoxPool) -> Iterator[Box]:
    (taken,) = box_pool.acquire(1)
    yield taken
    box_pool.release([taken])


@pytest.fixture
def box_1c(box_pool: BoxPool) -> Iterator[Box]:
    (taken,) = box_pool.acquire(1, with_1c=True)
    yield taken
    box_pool.release([taken])


@pytest.fixture
def boxes(box_pool: BoxPool) -> Iterator[Callable[..., list[Box]]]:
    given: list[Box] = []

    def take(count: int, *, with_1c: bool = False) -> list[Box]:
        got = box_pool.acquire(count, with_1c=with_1c)
        given.extend(got)
        return got

    yield take
    box_pool.release(given)


@pytest.fixture
def fresh_box(box_pool: BoxPool) -> Iterator[Box]:
    new = box_pool.fresh()
    yield new
    box_pool.discard(new)
