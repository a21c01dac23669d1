"""Which proxy the push uses (controller.proxy, then HTTPS_PROXY / HTTP_PROXY / NO_PROXY), and the
CONNECT exchange itself against a small loopback proxy. The real proxy (tinyproxy) is in
tests/controller/test_serve_tls_proxy.py."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator

import pytest

from agent.config import parse
from agent.errors import ConfigError
from agent.httpwire import Proxy, ProxyRefused, tunnel
from agent.proxy import bypassed, choose

HTTPS = "https://ctl.example.com:8470"
SECRET = "Pr0xyPassw0rd"


def test_the_config_setting_wins_and_none_ignores_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:3128"}
    assert choose(HTTPS, "http://cfg-proxy:8080", env) == Proxy("cfg-proxy", 8080)
    assert choose(HTTPS, "none", env) is None
    assert choose(HTTPS, None, env) == Proxy("env-proxy", 3128)


def test_the_environment_by_scheme_lower_case_first_and_basic_auth() -> None:
    env = {
        "https_proxy": f"http://bk%40agent:{SECRET}@[::1]:3128",
        "HTTPS_PROXY": "http://upper:1",
        "HTTP_PROXY": "http://plain-proxy:80",
    }
    proxy = choose(HTTPS, None, env)
    assert proxy is not None and (proxy.host, proxy.port) == ("::1", 3128)
    assert proxy.authorization == "Basic " + base64.b64encode(f"bk@agent:{SECRET}".encode()).decode()
    assert proxy.shown == "http://[::1]:3128"  # what log lines show
    assert choose("http://ctl.example.com", None, env) == Proxy("plain-proxy", 80)
    assert choose(HTTPS, None, {"HTTP_PROXY": "http://plain-proxy:80"}) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypass"),
    [
        ("ctl.example.com", "ctl.example.com", True),
        ("example.com", "ctl.example.com", True),
        (".example.com", "ctl.example.com", True),
        ("ample.com", "ctl.example.com", False),
        ("localhost, 10.0.0.5 ,ctl.example.com", "ctl.example.com", True),
        ("*", "anything", True),
        ("", "ctl.example.com", False),
        ("::1", "::1", True),
    ],
)
def test_no_proxy(no_proxy: str, host: str, bypass: bool) -> None:
    assert bypassed(host, no_proxy) is bypass


def test_no_proxy_sends_the_push_straight_there() -> None:
    assert choose(HTTPS, None, {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "example.com"}) is None


def test_a_bad_environment_value_is_a_config_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigError) as caught:
        choose(HTTPS, None, {"HTTPS_PROXY": f"socks5://u:{SECRET}@p:1080"})
    assert "HTTPS_PROXY / https_proxy: expected an HTTP proxy URL such as http://proxy.example:3128" in str(
        caught.value
    )
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [f"https://u:{SECRET}@p:3128", f"http://u:{SECRET}@p", "proxy:3128", f"http://u:{SECRET}@p:99999", ""],
)
def test_a_bad_proxy_setting_names_the_key_and_does_not_show_the_value(bad: str) -> None:
    raw = {"controller": {"url": HTTPS, "token_file": "/etc/boxkeeper/agent.token", "proxy": bad}}
    with pytest.raises(ConfigError) as caught:
        parse(raw, "agent.yaml")
    assert str(caught.value).startswith("agent.yaml: controller.proxy: expected ")
    assert SECRET not in str(caught.value)


def test_a_good_proxy_setting_is_kept() -> None:
    raw = {"controller": {"url": HTTPS, "token_file": "/t", "proxy": "http://u:p@proxy.lan:3128"}}
    cfg = parse(raw, "agent.yaml")
    assert cfg.controller is not None and cfg.controller.proxy == "http://u:p@proxy.lan:3128"


@pytest.fixture
def answering() -> Iterator[tuple[socket.socket, list[bytes], list[bytes]]]:
    """A socket pair: the agent's end, what the 'proxy' received, and what it will answer."""
    ours, theirs = socket.socketpair()
    received: list[bytes] = []
    answers: list[bytes] = []

    def proxy() -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = theirs.recv(4096)
            if not chunk:
                return
            data += chunk
        received.append(data)
        theirs.sendall(answers[0])

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    yield ours, received, answers
    thread.join(5)
    ours.close()
    theirs.close()


def test_connect_sends_the_target_and_credentials_and_accepts_2xx(
    answering: tuple[socket.socket, list[bytes], list[bytes]],
) -> None:
    sock, received, answers = answering
    answers.append(b"HTTP/1.0 200 Connection established\r\nProxy-agent: test\r\n\r\n")
    tunnel(sock, "ctl.example.com", 8470, Proxy("p", 3128, "Basic dTpw"), timeout=5)
    assert received[0] == (
        b"CONNECT ctl.example.com:8470 HTTP/1.1\r\nHost: ctl.example.com:8470\r\n"
        b"Proxy-Authorization: Basic dTpw\r\n\r\n"
    )


def test_connect_refused_by_the_proxy_raises_with_its_status(
    answering: tuple[socket.socket, list[bytes], list[bytes]],
) -> None:
    sock, _received, answers = answering
    answers.append(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ProxyRefused) as caught:
        tunnel(sock, "::1", 8470, Proxy("p", 3128), timeout=5)
    assert caught.value.status == 407
