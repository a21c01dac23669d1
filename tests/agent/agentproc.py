"""Runs the real ``boxkeeper-agent run`` as a subprocess for the integration tests and the bench."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / ".venv" / "bin" / "boxkeeper-agent"
if not AGENT.exists():  # pragma: no cover - a venv elsewhere
    AGENT = Path(sys.executable).with_name("boxkeeper-agent")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0, step: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


class AgentProcess:
    """One agent: its config file, log file and process; ``stop()`` always leaves nothing behind."""

    def __init__(self, workdir: Path, config: dict[str, Any], name: str = "agent") -> None:
        self.workdir = workdir
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        host, port = str(config["listen"]).rsplit(":", 1)
        self.metrics_url = f"http://{host}:{port}/metrics"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open by the child
        try:
            self.proc = subprocess.Popen(
                [str(AGENT), "run", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        return self

    def scrape(self, timeout: float = 10.0) -> str | None:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=timeout) as response:  # noqa: S310
                return str(response.read().decode())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 60.0) -> str:
        def ready() -> str | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            return self.scrape()

        return str(wait_for("the agent's /metrics", ready, timeout))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _children(self) -> list[psutil.Process]:
        """The agent's check processes (plugins run in their own sessions, so killpg misses them)."""
        assert self.proc is not None
        with contextlib.suppress(psutil.Error):
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        return []

    def _reap(self, children: list[psutil.Process]) -> None:
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()  # psutil checks it is still the same process (pid + start time)
        psutil.wait_procs(children, timeout=5)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        children = self._children()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reap(children)
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        children = self._children()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._reap(children)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            children = self._children()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self._reap(children)
