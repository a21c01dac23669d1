"""Running ``boxkeeper serve`` as a real subprocess (for kill -9, agents and Prometheus tests)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx


class ControllerProcess:
    """``python -m controller.cli serve`` on the given config; ``url`` once it answers /healthz."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        *,
        listen: str = "127.0.2.2:0",
        extra_env: dict[str, str] | None = None,
        log_level: str = "warning",
        ca_file: Path | None = None,
    ) -> None:
        self.log_level = log_level
        self.ca_file = ca_file  # serve speaks HTTPS (tls: in the config) with a certificate from this CA
        self.config = config
        self.workdir = workdir
        self.listen = listen
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._n = 0

    def start(self, timeout: float = 60) -> str:
        self._n += 1
        ready = self.workdir / f"ready-{self._n}"
        log = open(self.workdir / f"controller-{self._n}.log", "wb")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.cli",
                "serve",
                "--config",
                str(self.config),
                "--listen",
                self.listen,
                "--ready-file",
                str(ready),
                "--log-level",
                self.log_level,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited {self.proc.returncode}: {self.log_tail()}")
            if ready.exists():
                scheme = "https" if self.ca_file else "http"
                self.url = f"{scheme}://" + ready.read_text().strip()
                verify: ssl.SSLContext | bool = True
                if self.ca_file:
                    verify = ssl.create_default_context(cafile=str(self.ca_file))
                try:
                    if httpx.get(self.url + "/healthz", timeout=5, verify=verify).status_code == 200:
                        return self.url
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()  # not left running (with its workers) after a failed start
                raise RuntimeError("controller did not become healthy: " + tail)
            time.sleep(0.1)

    def log_tail(self) -> str:
        path = self.workdir / f"controller-{self._n}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def log_tail_all(self) -> str:
        """Everything every start of the process has written."""
        return "".join((self.workdir / f"controller-{n}.log").read_text(errors="replace")
                       for n in range(1, self._n + 1))

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None
