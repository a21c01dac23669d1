"""The ``http`` check against a real box: nginx in front of PHP-FPM (a PHP page, answered chunked),
a static file (Content-Length), HEAD, and nginx's 502 page when PHP-FPM is down."""

from __future__ import annotations

import pytest

from agent.report import Status
from tests.agent.builders import http_check
from tests.boxes import Box

pytestmark = pytest.mark.integration


def test_portal_page_through_nginx_and_php_fpm(box: Box) -> None:
    result = http_check("portal", box.info.portal_url, expect_status=(200,), body_regex="PORTAL_OK",
                       body_not_regex="502 Bad Gateway").run(10.0)
    assert result.status is Status.OK, result.summary
    size = next(p.value for p in result.perfdata if p.label == "size")
    assert size > 300  # the whole PHP page was read


def test_static_file_and_head_request(box: Box) -> None:
    url = box.info.portal_url + "upload/iblock/1a2/logo.gif"
    get = http_check("logo", url, expect_status=(200,)).run(10.0)
    head = http_check("logo", url, method="HEAD", expect_status=(200,)).run(10.0)
    assert get.status is Status.OK and head.status is Status.OK, (get.summary, head.summary)
    sizes = [next(p.value for p in r.perfdata if p.label == "size") for r in (get, head)]
    assert sizes[0] == (box.layout.docroot / "upload/iblock/1a2/logo.gif").stat().st_size
    assert sizes[1] == 0


def test_php_fpm_down_is_critical_with_nginx_502(box: Box) -> None:
    box.stop_service("php-fpm")
    check = http_check("portal", box.info.portal_url, expect_status=(200, 302), body_regex="PORTAL_OK")
    result = check.run(10.0)
    assert result.status is Status.CRITICAL
    assert result.summary.startswith(f"HTTP 502 from {box.info.portal_url}")
