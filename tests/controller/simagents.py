"""Simulated agents for fleet-scale tests: real ``boxkeeper.report/1`` reports pushed over HTTP to
one or more real ``boxkeeper serve`` processes, every ``interval`` seconds.

Like the real agent, a report that cannot be pushed is kept (a bounded spool, oldest dropped) and
pushed again, in order, once the controller answers: replays arrive late with their old
``sent_at``. A few threads each drive a slice of the hosts (bounded: ``max_seconds``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from agent.report import SCHEMA, CheckReport, Facts, Report, Status, to_json


def portal(status: int, summary: str = "") -> CheckReport:
    return CheckReport(name="portal", type="http", status=Status(status), hard=True, flapping=False,
                       summary=summary or ("HTTP 200" if status == 0 else "HTTP 502"), duration_seconds=0.01)


@dataclass
class SimAgent:
    host: str
    token: str
    seq: int = 0
    spool: list[bytes] = field(default_factory=list)


class SimFleet:
    """``urls()`` gives the controllers' base URLs (they change when one restarts); a host pushes to
    ``urls()[hash % n]`` and falls back to the others. ``down``: hosts whose agents stopped.
    ``status_of(host)``: the portal status the host reports now (0 unless set)."""

    def __init__(self, agents: dict[str, str], urls: Callable[[], list[str]], *, interval: float = 1.0,
                 threads: int = 8, spool_limit: int = 3, max_seconds: float = 600.0) -> None:
        self.agents = [SimAgent(host, token) for host, token in sorted(agents.items())]
        self.urls = urls
        self.interval = interval
        self.threads = threads
        self.spool_limit = spool_limit
        self.max_seconds = max_seconds
        self.down: set[str] = set()
        self.status: dict[str, int] = {}
        self.stored = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.threads):
            mine = self.agents[n::self.threads]
            thread = threading.Thread(target=self._run, args=(mine,), name=f"sim-agents-{n}", daemon=True)
            self._workers.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(30)

    def _report(self, agent: SimAgent) -> bytes:
        agent.seq += 1
        return to_json(Report(
            schema=SCHEMA, host=agent.host, agent_version="sim", seq=agent.seq, sent_at=time.time(),
            push_interval_seconds=self.interval, checks=(portal(self.status.get(agent.host, 0)),),
            samples=(), facts=Facts(hostname=agent.host, os="Debian 12", kernel="6.1"),
        ))

    def _run(self, agents: list[SimAgent]) -> None:
        deadline = time.monotonic() + self.max_seconds
        clients: dict[str, httpx.Client] = {}
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                tick = time.monotonic()
                for agent in agents:
                    if agent.host in self.down:
                        continue
                    agent.spool.append(self._report(agent))
                    del agent.spool[:-self.spool_limit]
                    self._flush(agent, clients)
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - tick)))
        finally:
            for client in clients.values():
                client.close()

    def _flush(self, agent: SimAgent, clients: dict[str, httpx.Client]) -> None:
        urls = self.urls()
        if not urls:
            return
        first = hash(agent.host) % len(urls)
        for url in urls[first:] + urls[:first]:
            client = clients.get(url) or clients.setdefault(url, httpx.Client(base_url=url, timeout=5))
            try:
                while agent.spool:
                    answer = client.post("/api/v1/reports", content=agent.spool[0], headers={
                        "Authorization": f"Bearer {agent.token}", "Content-Type": "application/json"})
                    if answer.status_code != 200:
                        with self._lock:
                            self.refused += 1
                        break
                    agent.spool.pop(0)
                    with self._lock:
                        self.stored += 1
                return
            except httpx.HTTPError:
                continue  # this controller is away: try the next one, or keep the spool for later
