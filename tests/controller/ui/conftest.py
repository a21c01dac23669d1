"""``make_ui(tmp, hosts=...)``: a controller with the web page on a real uvicorn (closed after the test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.controller.ui.support import Page, make_page


@pytest.fixture
def make_ui(live_server: Callable[..., str]) -> Iterator[Callable[..., Page]]:
    pages: list[Page] = []

    def make(tmp: Any, **kwargs: Any) -> Page:
        page = make_page(tmp, live_server, **kwargs)
        pages.append(page)
        return page

    try:
        yield make
    finally:
        for page in pages:
            page.client.close()
            page.db.dispose()
