"""``onec_publication`` check: the 1C web publication answers, and Apache loads the 1C web
extension (``wsap24.so``) of the platform version that runs.

``webinst -publish -apache24`` writes ``LoadModule _1cws_module "/opt/1cv8/x86_64/<version>/wsap24.so"``
into Apache's config (``apache_conf``); after a platform update that line must name the new
version (DOMAIN.md). Each run:

- GETs ``url`` (the ``http`` check's code; redirects followed): not ``expect_status`` (200), no
  answer in time → CRITICAL;
- reads ``apache_conf``: no uncommented ``LoadModule _1cws_module`` line → CRITICAL (the
  publication is not loaded); the file unreadable → UNKNOWN;
- the running platform version: the version directory of the running ``ragent`` (the processes
  named ``ragent`` in the agent's shared process scan; their command line,
  ``/opt/1cv8/x86_64/<version>/ragent``, as the ``srv1cv8-<version>@`` unit starts it).
  The line naming another version → CRITICAL; no ragent running → UNKNOWN for the comparison (the
  ``onec_cluster`` check says the cluster is down).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Optional

from agent.checks.base import CheckResult, CheckSpec, FromSpec, Resources
from agent.checks.http import HttpCheck, HttpSpec
from agent.checks.process import PsutilLike, _default_psutil
from agent.configtypes import HttpUrl, StatusCodes, Text
from agent.report import Sample, Status, worst

METRICS = {
    "boxkeeper_onec_publication_up":
        "1 when the 1C web publication answered with the expected status, else 0.",
    "boxkeeper_onec_publication_version_match":
        "1 when Apache's wsap24.so line names the running 1C platform version, 0 when another, absent "
        "when either is not known.",
}

LOADMODULE = re.compile(r'^\s*LoadModule\s+_1cws_module\s+"?([^"\s]+)"?', re.MULTILINE)
VERSION_DIR = re.compile(r"/(\d+(?:\.\d+){3})/[^/]+$")


class OnecPublicationSpec(CheckSpec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    type: Literal["onec_publication"] = "onec_publication"
    url: HttpUrl
    apache_conf: Text
    expect_status: StatusCodes = StatusCodes((200,))


def wsap_line(text: str) -> Optional[str]:
    """The path of the last uncommented ``LoadModule _1cws_module`` line (Apache: the last wins)."""
    found = LOADMODULE.findall(text)
    return found[-1] if found else None


def running_versions(processes: Iterable[Any]) -> set[str]:
    """Platform versions of the running ragent processes (from their command lines)."""
    versions = set()
    for p in processes:
        if p.info.get("name") not in (None, "ragent"):
            continue
        argv = p.info.get("cmdline") or []
        if argv and argv[0].rsplit("/", 1)[-1] == "ragent" and (m := VERSION_DIR.search(argv[0])):
            versions.add(m.group(1))
    return versions


@dataclass(frozen=True)
class OnecPublicationCheck(FromSpec):
    spec: OnecPublicationSpec
    http: HttpCheck
    psutil: PsutilLike

    def run(self, timeout: float) -> CheckResult:
        spec = self.spec
        labels = {"check": self.name}
        answer = self.http.run(timeout)
        http_ok = answer.status is Status.OK
        samples = [Sample("boxkeeper_onec_publication_up", 1.0 if http_ok else 0.0, "gauge", labels)]
        parts = [f"{spec.url}: {answer.summary}"]
        statuses = [Status.OK if http_ok else Status.CRITICAL]
        try:
            with open(spec.apache_conf, encoding="utf-8", errors="replace") as f:
                module = wsap_line(f.read(4 * 1024 * 1024))
        except OSError as exc:
            parts.append(f"cannot read {spec.apache_conf}: {exc.strerror or exc}")
            return CheckResult(worst([*statuses, Status.UNKNOWN]), "; ".join(parts), answer.perfdata,
                               samples=tuple(samples))
        if module is None:
            parts.append(f"no LoadModule _1cws_module line in {spec.apache_conf}: the publication is not "
                         "loaded")
            return CheckResult(Status.CRITICAL, "; ".join(parts), answer.perfdata, samples=tuple(samples))
        m = VERSION_DIR.search(module)
        published = m.group(1) if m else None
        running = running_versions(self.psutil.process_iter(["name", "cmdline"]))
        if published is None:
            parts.append(f"{spec.apache_conf} loads {module}, whose path names no platform version")
            statuses.append(Status.UNKNOWN)
        elif not running:
            parts.append(f"wsap24.so of {published}; no ragent running, so the running version is not known")
            statuses.append(Status.UNKNOWN)
        elif published in running:
            parts.append(f"wsap24.so of {published}, the running platform")
            samples.append(Sample("boxkeeper_onec_publication_version_match", 1.0, "gauge", labels))
        else:
            parts.append(f"{spec.apache_conf} loads wsap24.so of {published} but the platform running is "
                         f"{', '.join(sorted(running))}: switch the LoadModule line")
            samples.append(Sample("boxkeeper_onec_publication_version_match", 0.0, "gauge", labels))
            statuses.append(Status.CRITICAL)
        return CheckResult(worst(statuses), "; ".join(parts), answer.perfdata, samples=tuple(samples))


def build(spec: OnecPublicationSpec, resources: Resources) -> OnecPublicationCheck:
    http = HttpCheck(HttpSpec(name=spec.name, url=spec.url, expect_status=spec.expect_status,
                              timeout=spec.timeout))
    table = resources.processes
    return OnecPublicationCheck(spec, http, table.named("ragent") if table is not None else _default_psutil())
