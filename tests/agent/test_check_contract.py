"""The contract every registered check type keeps, one test per clause, run over the registry.

A type is a spec (its config keys), a check object and a build function (agent/checks/registry.py).
For each type, from its minimal example below (the keys it cannot do without):

(a) a run that raises is reported by the scheduler as UNKNOWN "check crashed: <type>: <message>";
(b) a run that hangs past the timeout is reported UNKNOWN with the type's timeout text ("timed out
    after 0.2s", or its own ``timeout_summary``), and the agent goes on;
(c) a real run (real I/O on this machine: a local HTTP server and port on 127.0.1.1, files in
    tmp_path, a shell as the plugin, this box's processes, /, and for the database and Bitrix
    types a test box's portal — MariaDB, docroot, logs —, for the 1C types a --with-1c box's rac
    TEST DOUBLE and real PostgreSQL, with the keys of :data:`REAL_RUN` that point the type at the
    box's real paths) returns a CheckResult with a Status, well-formed
    perfdata (a label, a finite value, a unit string, finite or no thresholds) and well-formed
    samples (a name its type declares, a finite value, string labels);
(d) the spec refuses a key it does not have, naming ``checks[0].<key>`` and listing its keys, and a
    missing required key, naming it;
(e) its defaults live in the spec: a spec built in code from the example's keys equals the one
    read from YAML with only those keys; the example is minimal (without any one key it is
    refused).

(a) and (b) wrap the real check object (its name, type and timeout text) in a fault injector: no
check type can be made to crash on purpose without one, and it is the scheduler's handling that is
the contract there.
"""

from __future__ import annotations

import dataclasses
import math
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psutil
import pytest
import yaml

from agent.checks.base import Check, CheckResult, CheckSpec, Resources, timeout_text
from agent.checks.registry import CHECK_TYPES, build_check, check_type, type_names
from agent.config import parse
from agent.configtypes import Duration, dec_hook
from agent.errors import ConfigError, SpecError
from agent.proctable import ProcessTable
from agent.report import Status
from agent.scheduler import CheckScheduler
from tests.agent.conftest import LOOPBACK, HttpServer, respond
from tests.agent.test_onec_checks import start_ragent
from tests.boxes.box import Box

TIMEOUT = 0.2


@dataclass(frozen=True)
class Local:
    """Real things on this machine for the examples to point at."""

    http_url: str
    tcp_address: str
    file_glob: str
    process_name: str
    log_path: str
    docroot: str  # a Bitrix docroot: a stand-in in tmp_path, or a test box's for a real run
    rac: str  # 1C's rac: a path (nothing there) here, a --with-1c box's TEST DOUBLE for a real run
    apache_conf: str  # an Apache config with the 1C web publication's LoadModule line


#: The minimal example of each registered type: the keys it cannot do without, as config text.
#: A registered type without an example fails test_every_registered_type_has_an_example.
EXAMPLES: dict[str, Callable[[Local], dict[str, Any]]] = {
    "http": lambda local: {"url": local.http_url},
    "process": lambda local: {"match": local.process_name},
    "tcp": lambda local: {"address": local.tcp_address},
    "disk": lambda local: {"path": "/"},
    "file_age": lambda local: {"glob": local.file_glob, "max_age": "1h"},
    "command": lambda local: {
        "command": ["/bin/sh", "-c", "echo 'OK - fine | time=0.01s;1;2;0; size=10B;;;0;100 count=3'"],
    },
    "log": lambda local: {"path": local.log_path, "regex": "UPD_ERROR"},
    "mysql": lambda local: {"settings_from": local.docroot},
    "bitrix_licence": lambda local: {"docroot": local.docroot},
    "bitrix_agents": lambda local: {"docroot": local.docroot},
    "bitrix_mail_queue": lambda local: {"docroot": local.docroot},
    "bitrix_backup": lambda local: {"docroot": local.docroot},
    "bitrix_updates": lambda local: {"docroot": local.docroot},
    "bitrix_site_checker": lambda local: {"docroot": local.docroot},
    "bitrix_php_fatals": lambda local: {"docroot": local.docroot},
    "bitrix_push_server": lambda local: {"docroot": local.docroot},
    "onec_cluster": lambda local: {"rac": local.rac},
    "onec_infobase": lambda local: {"rac": local.rac, "infobase": "buh"},
    "onec_workers": lambda local: {"rac": local.rac},
    "onec_dbms": lambda local: {"database": "buh", "user": "onec"},
    "onec_publication": lambda local: {"url": local.http_url, "apache_conf": local.apache_conf},
}

#: Types whose real run needs a test box (its MariaDB and docroot) ...
ON_A_BOX = frozenset({"mysql", "bitrix_licence", "bitrix_agents", "bitrix_mail_queue", "bitrix_backup",
                      "bitrix_updates", "bitrix_site_checker", "bitrix_php_fatals", "bitrix_push_server"})
#: Types whose real run needs a --with-1c test box (the rac TEST DOUBLE, real PostgreSQL).
ON_A_1C_BOX = frozenset({"onec_cluster", "onec_infobase", "onec_workers", "onec_dbms"})
#: ... and the keys, beyond the minimal example, that point a real run at real things (the
#: defaults are bitrix-env's paths and ports, not this machine's).
REAL_RUN: dict[str, Callable[[Box, Local], dict[str, Any]]] = {
    "bitrix_backup": lambda box, local: {"archive_dir": str(box.layout.backup_dir)},
    "bitrix_php_fatals": lambda box, local: {"log": str(box.layout.logs / "php-errors.log")},
    "bitrix_push_server": lambda box, local: {"address": local.tcp_address, "process_regex": PUSH_MARKER},
    "onec_cluster": lambda box, local: {"rac": onec_rac(box)},
    "onec_infobase": lambda box, local: {
        "rac": onec_rac(box), "infobase_user": "Администратор", "password_in_argv": True,
        "infobase_password_file": secret_file(local, "buh.pwd", "secret")},
    "onec_workers": lambda box, local: {"rac": onec_rac(box)},
    "onec_dbms": lambda box, local: {
        "host": box.info.pg.host, "port": box.info.pg.port,
        "passfile": secret_file(local, "pgpass", f"*:*:*:onec:{box.info.pg.password}")},
}
PUSH_MARKER = "bk-contract-push-server"
#: The running 1C cluster agent's platform (a /bin/sleep through a link named ragent in a version dir).
RAGENT_VERSION = "8.3.27.1000"


def onec_rac(box: Box) -> str:
    return str(box.layout.root / "opt/1cv8/x86_64/8.3.27.1000/rac")


def secret_file(local: Local, name: str, text: str) -> str:
    path = Path(local.log_path).parent / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)

TYPES = type_names()


@pytest.fixture
def local(http_server: Callable[..., HttpServer], tmp_path: Path) -> Iterator[Local]:
    srv = http_server({"/": respond(200, "<title>Bitrix24</title>")})
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    (tmp_path / "backup.tar.gz").write_bytes(b"x" * 100)
    (tmp_path / "updater.log").write_text("2026-12-01 10:00:00 - UPD_SUCCESS - Module main updated\n")
    docroot = tmp_path / "www"
    (docroot / "bitrix").mkdir(parents=True)
    (docroot / "bitrix/.settings.php").write_text(
        "<?php return ['connections' => ['value' => ['default' => ['host' => '127.0.1.1:9', "
        "'database' => 'portal', 'login' => 'bitrix', 'password' => 'not-used']]]];\n")
    apache_conf = tmp_path / "apache2.conf"
    apache_conf.write_text(f'LoadModule _1cws_module "/opt/1cv8/x86_64/{RAGENT_VERSION}/wsap24.so"\n')
    try:
        yield Local(
            http_url=srv.url("/"),
            tcp_address=f"{LOOPBACK}:{listener.getsockname()[1]}",
            file_glob=str(tmp_path / "*.tar.gz"),
            process_name=psutil.Process().name(),
            log_path=str(tmp_path / "updater.log"),
            docroot=str(docroot),
            rac=str(tmp_path / "rac"),
            apache_conf=str(apache_conf),
        )
    finally:
        listener.close()


def config(kind: str, keys: dict[str, Any]) -> dict[str, Any]:
    """A config with one check, as YAML gives it (the keys went through YAML text)."""
    text = yaml.safe_dump({"checks": [{"name": "contract", "type": kind, **keys}]})
    return dict(yaml.safe_load(text))


def spec_of(kind: str, local: Local) -> CheckSpec:
    return parse(config(kind, EXAMPLES[kind](local))).checks[0]


def required_keys(spec: type[CheckSpec]) -> set[str]:
    return {f.encode_name for f in msgspec.structs.fields(spec) if f.required}


class Faulty:
    """A check of a registered type whose run raises, or blocks until released, instead of running
    (everything else, timeout_summary included, is the real check's)."""

    def __init__(self, check: Check, fault: str) -> None:
        self._check = check
        self._fault = fault
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._check, name)

    def run(self, timeout: float) -> CheckResult:
        if self._fault == "raise":
            raise RuntimeError(f"fault injected into the {self._check.type} check")
        self.release.wait(30)
        return CheckResult(Status.OK, "released")


def test_every_registered_type_has_an_example() -> None:
    assert set(TYPES) == set(EXAMPLES), "add an example for each registered check type (and only those)"
    assert len(TYPES) == len(CHECK_TYPES), "two registered types share a name"


@pytest.mark.parametrize("kind", TYPES)
def test_a_run_that_raises_is_unknown_check_crashed(kind: str, local: Local) -> None:
    spec = spec_of(kind, local)
    check = build_check(spec)
    sched = CheckScheduler([(spec, Faulty(check, "raise"))])  # type: ignore[list-item]
    try:
        (report,) = sched.run_once()
    finally:
        sched.stop()
    assert (report.type, report.status) == (kind, Status.UNKNOWN)
    assert report.summary == f"check crashed: RuntimeError: fault injected into the {kind} check"


@pytest.mark.parametrize("kind", TYPES)
def test_a_run_that_hangs_past_its_timeout_is_unknown_with_the_types_timeout_text(
    kind: str, local: Local,
) -> None:
    spec = msgspec.structs.replace(spec_of(kind, local), timeout=Duration(TIMEOUT))
    hung = Faulty(build_check(spec), "hang")
    sched = CheckScheduler([(spec, hung)], grace=0.1)  # type: ignore[list-item]
    try:
        (report,) = sched.run_once()
    finally:
        hung.release.set()
        sched.stop()
    assert report.status is Status.UNKNOWN
    assert report.summary == timeout_text(hung, TIMEOUT)
    assert "0.2s" in report.summary


@pytest.mark.integration
@pytest.mark.parametrize("kind", TYPES)
def test_a_real_run_gives_a_typed_result_with_well_formed_perfdata(
    kind: str, local: Local, request: pytest.FixtureRequest, tmp_path: Path,
    spawn: Callable[..., Any],
) -> None:
    keys = EXAMPLES[kind](local)
    if kind in ON_A_BOX:
        box: Box = request.getfixturevalue("box")
        local = dataclasses.replace(local, docroot=box.info.docroot)
        keys = {**EXAMPLES[kind](local), **REAL_RUN.get(kind, lambda b, x: {})(box, local)}
    if kind in ON_A_1C_BOX:
        box_1c: Box = request.getfixturevalue("box_1c")
        keys = {**EXAMPLES[kind](local), **REAL_RUN[kind](box_1c, local)}
    if kind == "bitrix_push_server":
        spawn([PUSH_MARKER, "300"], executable="/bin/sleep")
    if kind == "onec_publication":
        start_ragent(tmp_path, RAGENT_VERSION, spawn)
    spec = parse(config(kind, keys)).checks[0]
    check = build_check(spec, Resources(processes=ProcessTable(), state_dir=tmp_path / "state"))
    assert (check.name, check.type) == ("contract", kind)
    try:
        result = check.run(5.0)
    finally:
        close = getattr(check, "close", None)
        if callable(close):
            close()
    assert isinstance(result, CheckResult)
    assert isinstance(result.status, Status)
    assert isinstance(result.summary, str) and result.summary
    assert isinstance(result.details, str)
    for perf in result.perfdata:
        assert isinstance(perf.label, str) and perf.label, perf
        assert isinstance(perf.value, float) and math.isfinite(perf.value), perf
        assert isinstance(perf.unit, str), perf
        for limit in (perf.warn, perf.crit, perf.min, perf.max):
            assert limit is None or (type(limit) is float and math.isfinite(limit)), perf
    declared = check_type(kind).metrics
    for sample in result.samples:
        assert sample.name in declared, f"{sample.name} is not in the {kind} type's metrics"
        assert isinstance(sample.value, float) and math.isfinite(sample.value), sample
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in sample.labels.items()), sample
    if kind != "process":  # the others point at things that are there and fine
        assert result.status is Status.OK, result.summary


@pytest.mark.parametrize("kind", TYPES)
def test_an_unknown_key_is_refused_naming_it_and_the_types_keys(kind: str, local: Local) -> None:
    with pytest.raises(ConfigError) as info:
        parse(config(kind, {**EXAMPLES[kind](local), "no_such_key": 1}), source="<contract>")
    err = info.value
    assert err.key == "checks[0].no_such_key"
    allowed = sorted(f.encode_name for f in msgspec.structs.fields(check_type(kind).spec))
    assert err.expected == "no such key; expected one of " + ", ".join(allowed)


@pytest.mark.parametrize("kind", TYPES)
def test_a_missing_required_key_is_refused_naming_it(kind: str, local: Local) -> None:
    example = {"name": "contract", "type": kind, **EXAMPLES[kind](local)}
    required = required_keys(check_type(kind).spec) | {"type"}
    assert required <= set(example), f"the {kind} example lacks required keys"
    for key in sorted(required):
        raw = {k: v for k, v in example.items() if k != key}
        with pytest.raises(ConfigError) as info:
            parse({"checks": [raw]}, source="<contract>")
        assert info.value.key == f"checks[0].{key}"
        assert info.value.expected.endswith("(required)")


@pytest.mark.parametrize("kind", TYPES)
def test_defaults_live_in_the_spec_and_the_example_is_minimal(kind: str, local: Local) -> None:
    spec_type = check_type(kind).spec
    example = EXAMPLES[kind](local)
    from_yaml = parse(config(kind, example)).checks[0]
    types = {f.encode_name: f.type for f in msgspec.structs.fields(spec_type)}
    values = {key: msgspec.convert(value, types[key], dec_hook=dec_hook) for key, value in example.items()}
    in_code = spec_type(name="contract", **values)
    assert in_code == from_yaml
    assert type(from_yaml) is spec_type and from_yaml.type == kind
    assert from_yaml.retry_interval == min(5.0, from_yaml.interval)
    for key in example:  # every key of the example is needed
        with pytest.raises((ConfigError, SpecError)):
            parse(config(kind, {k: v for k, v in example.items() if k != key}))
