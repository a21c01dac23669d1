"""``http`` steps with ``from: host`` on a real test box: curl runs on the box over the run's SSH
connection against the box's nginx, and against a real nginx with a self-signed certificate that
the test starts on the box's address (openssl makes the certificate)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from controller.redact import Redactor
from controller.workflows.executor import Command, CommandResult
from controller.workflows.ssh import SSHExecutor
from controller.workflows.steps.base import Step, StepContext, StepOutcome, run_step
from controller.workflows.steps.http import HttpAction
from tests.boxes.box import Box
from tests.controller.conftest import free_port
from tests.controller.workflows.boxkit import executor, known_hosts_file

pytestmark = pytest.mark.integration

ERRORS = "(?i)DB query error|Fatal error|Bitrix Environment"


def probe(run_on: SSHExecutor, url: str, **options: Any) -> StepOutcome:
    action = HttpAction.model_validate({"url": "{{ url }}", "body_not_regex": ERRORS, **options})
    context = StepContext(run_on.host, run_on, {"url": url}, Redactor(), None)
    return run_step(Step("portal", action, 15), context)


def leftovers(run_on: SSHExecutor) -> str:
    result = run_on.run(Command("ls -d /tmp/boxkeeper-http.* 2>/dev/null | wc -l", "ls"), 10)
    return result.stdout_tail.strip()


@pytest.fixture
def ssh(box: Box, tmp_path: Path) -> Iterator[SSHExecutor]:
    run_on = executor(box, known_hosts_file(box, tmp_path))
    try:
        yield run_on
    finally:
        run_on.close()


def test_the_portal_probed_from_the_box_itself(box: Box, ssh: SSHExecutor) -> None:
    ok = probe(ssh, box.info.portal_url, body_regex="PORTAL_OK", **{"from": "host"})
    assert ok.ok, ok.message
    assert ok.exit_code == 200 and "PORTAL_OK" in ok.stdout
    assert ok.command == f"GET {box.info.portal_url} (from the host, curl)"
    assert leftovers(ssh) == "0"  # the body's temp dir on the box is gone
    # shell and curl-config syntax in the URL is just part of the URL (it never meets a shell)
    odd = probe(ssh, box.info.portal_url + "?a=1&b='x';echo${IFS}pwned\\", body_regex="PORTAL_OK",
                **{"from": "host"})
    assert odd.ok, odd.message
    [request] = [line for line in (box.layout.logs / "nginx-access.log").read_text().splitlines()
                 if "pwned" in line]
    assert "GET /?a=1&b='x';echo${IFS}pwned\\x5C HTTP/1.1" in request  # as sent (nginx logs \ as \x5C)

    box.fault("stop-php-fpm")  # nginx answers with bitrix-env's own 502 page
    down = probe(ssh, box.info.portal_url, **{"from": "host"})
    assert not down.ok and down.exit_code == 502 and down.message == "HTTP 502, expected [200]"
    assert "Bitrix Environment" in down.stdout
    box.fault("stop-php-fpm", undo=True)

    box.fault("stop-nginx")
    refused = probe(ssh, box.info.portal_url, **{"from": "host"})
    assert not refused.ok and refused.exit_code is None
    assert refused.message.startswith("request failed on the host: curl exit 7: curl: (7) Failed to connect")
    assert leftovers(ssh) == "0"


@dataclass
class NoCurlHost:
    """The box over its real SSH connection, with a PATH in which no curl is found (as on a box
    where curl is not installed): the step's own check runs in the box's real sh."""

    inner: SSHExecutor

    @property
    def host(self) -> str:
        return self.inner.host

    def run(self, command: Command, timeout: float) -> CommandResult:
        return self.inner.run(replace(command, text="PATH=/nonexistent; " + command.text), timeout)

    def put(self, local: str, remote: str) -> None:
        self.inner.put(local, remote)

    def get(self, remote: str, local: str) -> None:
        self.inner.get(remote, local)

    def close(self) -> None:
        self.inner.close()


def test_a_box_without_curl_is_told_plainly(box: Box, ssh: SSHExecutor) -> None:
    action = HttpAction.model_validate({"url": box.info.portal_url, "from": "host"})
    context = StepContext(box.name, NoCurlHost(ssh), {}, Redactor(), None)
    outcome = run_step(Step("portal", action, 15), context)
    assert not outcome.ok
    assert outcome.message == ("curl is not installed on the host "
                               "(an http step with from: host runs curl there)")


# --------------------------------------------------------------------------- a self-signed HTTPS portal


@dataclass(frozen=True)
class TlsPortal:
    url: str


def _wait_listening(address: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(100):  # at most ~10 s
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nginx did not listen on {address}:{port}")


@pytest.fixture
def tls_portal(box: Box, tmp_path: Path) -> Iterator[TlsPortal]:
    """A real nginx with a self-signed certificate on the box's address, in front of the box's portal."""
    assert shutil.which("openssl") and shutil.which("nginx")
    work = tmp_path / "tls"
    work.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=portal.test", "-keyout", str(work / "key.pem"),
                    "-out", str(work / "cert.pem")], check=True, capture_output=True, timeout=60)
    address = box.info.address
    port = free_port(address)
    temp = "\n".join(f"    {kind}_temp_path {work}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(f"""daemon off;
master_process off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{}}
http {{
    access_log off;
{temp}
    server {{
        listen {address}:{port} ssl;
        ssl_certificate {work}/cert.pem;
        ssl_certificate_key {work}/key.pem;
        location / {{ proxy_pass {box.info.portal_url}; }}
    }}
}}
""")
    log = work / "nginx.out"
    with log.open("wb") as out:
        process = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf"), "-e", str(work / "error.log")],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(address, port, process, log)
        yield TlsPortal(f"https://{address}:{port}/")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_a_self_signed_portal_is_refused_unless_verify_tls_is_false(ssh: SSHExecutor,
                                                                     tls_portal: TlsPortal) -> None:
    checked = probe(ssh, tls_portal.url, **{"from": "host"})
    assert not checked.ok and checked.exit_code is None
    assert checked.message.startswith("request failed on the host: curl exit 60: curl: (60) SSL certificate "
                                      "problem: self-signed certificate")
    unchecked = probe(ssh, tls_portal.url, body_regex="PORTAL_OK", verify_tls=False, **{"from": "host"})
    assert unchecked.ok and unchecked.exit_code == 200, unchecked.message
    assert unchecked.command == f"GET {tls_portal.url} (from the host, curl) (TLS not verified)"
    # the controller's own request: the same rule
    from_controller = probe(ssh, tls_portal.url)
    assert not from_controller.ok and from_controller.message.startswith("request failed:")
    assert "CERTIFICATE_VERIFY_FAILED" in from_controller.message
    assert probe(ssh, tls_portal.url, body_regex="PORTAL_OK", verify_tls=False).ok
