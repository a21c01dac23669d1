"""os-packages-update.yaml's apt path on a real test box, against a local repository the test builds
(aptrepo.py: real .debs installed with this machine's dpkg and apt, every file under the box's root).

Two packages per box: ``portal-conf`` ships an nginx snippet into the box's ``etc/nginx/bx/conf``
(version 1.0 and the good 2.0 only set a response header the test reads; a bad 2.0 sends the
portal's PHP to a socket that does not exist, so every page is BitrixEnv's 502), and ``kernel``
whose 2.0 asks for a reboot (``run/reboot-required``, as a kernel's postinst does). What is asserted
is what an admin sees afterwards: the versions dpkg reports, the portal, the database, the kept
.deb files, the incident.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.runs import RunSummary, TimelineEntry
from tests.boxes.box import Box
from tests.controller.workflows.aptrepo import BoxRepo, Package, write_reboot_double
from tests.controller.workflows.boxkit import db_fingerprint, executor, known_hosts_file

pytestmark = pytest.mark.integration

#: what the bad package's postinst does to the portal's database (the rollback must undo it)
CHANGE_DB = "UPDATE b_option SET VALUE = 'changed by postinst' WHERE MODULE_ID = 'main'"
RESTORE_DB = "restore the database from the pair when the DB server was in the set"
PLAYBOOK = Path(__file__).resolve().parents[3] / "playbooks" / "os-packages-update.yaml"


@pytest.fixture
def repo(box: Box, tmp_path: Path) -> Iterator[BoxRepo]:
    repo = BoxRepo(box, tmp_path / "debs")
    repo.workdir.mkdir()
    repo.purge()  # left over by a killed session
    repo.setup()
    try:
        yield repo
    finally:
        repo.purge()
        for f in box.layout.etc.glob("nginx/bx/conf/*.conf"):
            f.unlink()
        box.start_service("nginx") if not box.is_running("nginx") else None


def conf(box: Box) -> str:
    return str(box.layout.etc / "nginx/bx/conf/boxkeeper-test.conf")


def restart_nginx(box: Box) -> str:
    return f"{box.layout.bin}/boxctl restart nginx"


def portal_conf(repo: BoxRepo, version: str, body: str, postinst: str | None = None) -> Package:
    script = restart_nginx(repo.box) if postinst is None else postinst
    return Package(repo.name("portal-conf"), version, {conf(repo.box): body}, script)


def header(version: str) -> str:
    return f'add_header X-Portal-Conf "{version}" always;\n'


def kernel(repo: BoxRepo, version: str, reboot: bool) -> Package:
    postinst = f"touch {repo.box.layout.run}/reboot-required" if reboot else None
    return Package(repo.name("kernel"), version,
                   {str(repo.box.layout.root / "usr/lib/boxkeeper-test/kernel"): version + "\n"}, postinst)


def run_update(store: Database, box: Box, repo: BoxRepo, tmp_path: Path, **extra: str) -> RunSummary:
    reboot = write_reboot_double(box)
    values = {
        "package_manager": "apt",
        "apt_options": repo.apt_options,
        "backup_dir": str(box.layout.backup_dir),
        "lock_dir": str(box.layout.run),
        "min_free_mb": "10",
        "docroot": box.info.docroot,
        "portal_url": box.info.portal_url,
        "php_modules": "mysqli openssl json 'Zend OPcache'",
        "reboot_required_file": str(box.layout.run / "reboot-required"),
        "reboot_command": str(reboot),
        "boot_id_command": f"cat {box.layout.run}/boot_id",
        "reboot_timeout": "120",
        "update_timeout": "120",
    }
    values.update(extra)
    ex = executor(box, known_hosts_file(box, tmp_path))
    try:
        return Engine(store.session, incidents=ServiceIncidents()).run(load_playbook(PLAYBOOK), box.name, ex,
                                                                        values)
    finally:
        ex.close()


def why(result: RunSummary) -> str:
    """The failed steps' output, for an assertion message."""
    return "\n".join(f"{e.phase}/{e.name}: {e.message}\n{e.stdout_tail}\n{e.stderr_tail}"
                     for e in result.timeline if e.status == "failed") or (result.error or "")


def steps(result: RunSummary, phase: str, name: str) -> list[TimelineEntry]:
    return [e for e in result.timeline if e.phase == phase and e.name == name]


def served_conf(box: Box) -> tuple[int, str | None]:
    response = httpx.get(box.info.portal_url, timeout=10)
    return response.status_code, response.headers.get("X-Portal-Conf")


def open_incidents(store: Database, host: str) -> list[Incident]:
    with store.session() as s:
        return list(s.scalars(select(Incident).where(Incident.host_name == host, Incident.status == "open")))


def install_old(repo: BoxRepo, *, kernel_asks_reboot: bool = False) -> tuple[Path, Path]:
    conf_old = repo.build(portal_conf(repo, "1.0", header("1.0")))
    kernel_old = repo.build(kernel(repo, "1.0", reboot=kernel_asks_reboot))
    repo.dpkg_install(conf_old)
    repo.dpkg_install(kernel_old)
    (repo.box.layout.run / "reboot-required").unlink(missing_ok=True)  # rebooted since
    assert served_conf(repo.box) == (200, "1.0")
    return conf_old, kernel_old


def test_good_upgrade_of_all_reboots_the_box_and_succeeds(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    olds = install_old(repo)
    news = [repo.build(portal_conf(repo, "2.0", header("2.0"))), repo.build(kernel(repo, "2.0", reboot=True))]
    repo.publish([*olds, *news])  # the repository still has the old versions (apt-get download)

    result = run_update(store, box, repo, tmp_path, packages="all")

    assert result.state == "SUCCEEDED", why(result)
    assert served_conf(box) == (200, "2.0")
    assert repo.installed(repo.name("portal-conf")) == ("ii", "2.0")
    assert repo.installed(repo.name("kernel")) == ("ii", "2.0")
    plan = result.captured["plan"].split()
    assert sorted(plan) == sorted(f"{repo.name(n)}=1.0>2.0" for n in ("portal-conf", "kernel"))
    # rebooted (the box's reboot double) and waited for: a new boot id, the marker gone
    assert result.captured["reboot"] == "yes:first-boot"
    assert (box.layout.run / "boot_id").read_text().strip() != "first-boot"
    assert not (box.layout.run / "reboot-required").exists()
    [wait] = steps(result, "update", "the host is back (after a reboot)")
    assert wait.status == "ok"
    # the old versions were kept for a rollback, and recorded
    run_dir = box.layout.backup_dir / f"boxkeeper-run-{result.id}"
    assert sorted(p.name for p in (run_dir / "debs").iterdir()) == sorted(p.name for p in olds)
    assert f"{repo.name('kernel')}:all=1.0" in (run_dir / "versions.before").read_text()
    assert not (run_dir / "db.sql.gz").exists()  # no DB server or PHP in the set: no pair
    assert open_incidents(store, box.name) == []


def test_failing_postinst_is_rolled_back_from_the_kept_deb(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    olds = install_old(repo)
    bad = repo.build(portal_conf(repo, "2.0", header("2.0"),
                                 postinst='echo "portal-conf: cannot configure" >&2; exit 1'))
    repo.publish([*olds, bad])

    result = run_update(store, box, repo, tmp_path, packages=f"boxkeeper-test-portal-conf-{box.name}")

    assert result.state == "ROLLED_BACK", why(result)
    assert result.failed_step == "update/update the chosen set"
    assert repo.installed(repo.name("portal-conf")) == ("ii", "1.0")  # not half-configured any more
    assert repo.installed(repo.name("kernel")) == ("ii", "1.0")  # not in the set: untouched
    assert served_conf(box) == (200, "1.0")
    [update] = steps(result, "update", "update the chosen set")
    assert "cannot configure" in update.stderr_tail + update.stdout_tail  # dpkg ran the failing postinst
    [reinstall] = steps(result, "rollback", "reinstall the recorded versions")
    assert reinstall.status == "ok" and "reinstalling the kept versions" in reinstall.stdout_tail
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "release_rolled_back"


def test_config_that_breaks_the_portal_is_rolled_back_with_the_db_pair(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    olds = install_old(repo)
    db_before = db_fingerprint(box)
    sock = box.layout.mysql_socket
    broken = ("location ~ \\.php$ { include /etc/nginx/fastcgi_params; "
              f"fastcgi_pass unix:{box.layout.run}/no-such-php-fpm.sock; }}\n")
    # like a DB server's postinst that upgrades the data: it changes the portal's database too
    damage = f'mariadb --no-defaults --socket={sock} -uroot portal -e "{CHANGE_DB}"; {restart_nginx(box)}'
    bad = repo.build(portal_conf(repo, "2.0", broken, postinst=damage))
    repo.publish([*olds, bad])

    in_set = "^boxkeeper-test-portal-conf"
    result = run_update(store, box, repo, tmp_path, packages="boxkeeper-test-portal-*",
                        pair_packages=in_set, db_packages=in_set)

    assert result.state == "ROLLED_BACK", why(result)
    assert result.failed_step == "verify/portal home page"
    assert served_conf(box) == (200, "1.0")
    assert repo.installed(repo.name("portal-conf")) == ("ii", "1.0")
    assert db_fingerprint(box) == db_before  # restored from the pair
    [restore] = steps(result, "rollback", RESTORE_DB)
    assert restore.status == "ok" and "database left as it is" not in restore.stdout_tail
    run_dir = box.layout.backup_dir / f"boxkeeper-run-{result.id}"
    assert (run_dir / "db.sql.gz").exists() and (run_dir / "files.tar.gz").exists()
    [incident] = open_incidents(store, box.name)
    assert incident.cause == "release_rolled_back"
    assert f"boxkeeper-run-{result.id}" in incident.summary
    # the DB password read from .settings.php was used in every phase and stored nowhere
    dump = "\n".join(store.engine.raw_connection().driver_connection.iterdump())  # type: ignore[union-attr]
    assert box.info.db.password not in dump and 'MYSQL_PWD="$BOXKEEPER_SECRET_captured_db_password"' in dump


def test_rollback_that_reinstalls_a_kernel_reboots_again(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    olds = install_old(repo, kernel_asks_reboot=True)  # as a kernel's postinst does on every install
    broken = "return 503;\n"
    news = [repo.build(portal_conf(repo, "2.0", broken)), repo.build(kernel(repo, "2.0", reboot=True))]
    repo.publish([*olds, *news])

    result = run_update(store, box, repo, tmp_path, packages="all")

    assert result.state == "ROLLED_BACK", why(result)
    assert result.failed_step == "verify/portal home page"
    assert repo.installed(repo.name("kernel")) == ("ii", "1.0")
    assert served_conf(box) == (200, "1.0")
    # rebooted after the update, and again after the old kernel went back; waited for both times
    first = result.captured["reboot"]
    second = result.captured["rollback_reboot"]
    assert first == "yes:first-boot" and second.startswith("yes:") and second != first
    assert (box.layout.run / "boot_id").read_text().strip() not in ("first-boot", second.removeprefix("yes:"))
    [wait] = steps(result, "rollback", "the host is back (after a reboot in the rollback)")
    assert wait.status == "ok"


def test_nothing_to_update_succeeds_without_change(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    olds = install_old(repo)
    repo.publish(list(olds))
    result = run_update(store, box, repo, tmp_path, packages="all")
    assert result.state == "SUCCEEDED", why(result)
    assert result.captured["plan"] == "none" and result.captured["reboot"] == "no:first-boot"
    assert repo.installed(repo.name("portal-conf")) == ("ii", "1.0")


def test_unreachable_repository_stops_in_preflight(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    install_old(repo)
    repo.sources.write_text(f"deb [trusted=yes] file:{repo.repo}-gone ./\n")
    result = run_update(store, box, repo, tmp_path, packages="all")
    assert result.state == "FAILED"
    assert result.failed_step == "preflight/repositories reachable (refresh the package lists)"
    assert repo.installed(repo.name("portal-conf")) == ("ii", "1.0")


def test_a_rolled_back_package_set_is_held_and_skipped_on_the_next_run(
        store: Database, box: Box, repo: BoxRepo, tmp_path: Path) -> None:
    """The release of this playbook is the planned `name=old>new` set (docs/workflows.md "Release holds")."""
    olds = install_old(repo)
    bad = repo.build(portal_conf(repo, "2.0", header("2.0"),
                                 postinst='echo "portal-conf: cannot configure" >&2; exit 1'))
    repo.publish([*olds, bad])
    packages = f"boxkeeper-test-portal-conf-{box.name}"
    first = run_update(store, box, repo, tmp_path, packages=packages)
    assert first.state == "ROLLED_BACK", why(first)
    release = f"{repo.name('portal-conf')}=1.0>2.0"
    [incident] = open_incidents(store, box.name)
    assert f"release {release} is now held for the fleet" in incident.summary

    kept_before = sorted(box.layout.backup_dir.rglob("*"))
    second = run_update(store, box, repo, tmp_path, packages=packages)
    assert second.state == "SKIPPED", why(second)
    assert f"release held: os-packages-update release {release}" in (second.error or "")
    assert repo.installed(repo.name("portal-conf")) == ("ii", "1.0") and served_conf(box) == (200, "1.0")
    assert sorted(box.layout.backup_dir.rglob("*")) == kept_before  # nothing kept: nothing was to change
    assert len(open_incidents(store, box.name)) == 1
