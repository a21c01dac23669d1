"""A local apt repository for one test box, holding only packages the test builds itself (dpkg-deb).

The packages are real Debian packages installed with this machine's real dpkg and apt, but every
file they ship lies under the box's root, and apt is pointed only at the box's repository
(``APT_OPTIONS``: its own sources list, lists and cache), so an ``apt-get upgrade`` inside a test
can upgrade nothing but them. Every package name ends with the box's name; :meth:`BoxRepo.purge`
removes them from the machine's dpkg database at the end of a test (and before it, in case a
killed session left some behind).

Also here: the box's stand-in for a reboot (a TEST DOUBLE, see :func:`write_reboot_double`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.boxes.box import Box

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Package:
    """One version of a test package: the files it ships (absolute paths under the box's root) and
    its postinst script (sh), if any."""

    name: str
    version: str
    files: dict[str, str]
    postinst: str | None = None


class BoxRepo:
    def __init__(self, box: Box, workdir: Path) -> None:
        self.box = box
        root = box.layout.root
        self.root = root
        self.repo = root / "srv/apt-repo"
        self.workdir = workdir
        self.sources = root / "etc/apt/sources.list"
        self.source_parts = root / "etc/apt/sources.list.d"
        self.lists = root / "var/lib/apt/lists"
        self.cache = root / "var/cache/apt"
        self.built: set[str] = set()

    def name(self, base: str) -> str:
        return f"boxkeeper-test-{base}-{self.box.name}"

    @property
    def apt_options(self) -> str:
        """The playbook's ``apt_options`` (a ``--var`` string): only this box's repository."""
        return " ".join(f"-o {option}" for option in (
            f"Dir::Etc::SourceList={self.sources}", f"Dir::Etc::SourceParts={self.source_parts}",
            f"Dir::State::Lists={self.lists}", f"Dir::Cache={self.cache}", "APT::Sandbox::User=root",
            "DPkg::Lock::Timeout=300"))

    def setup(self) -> None:
        for d in (self.repo, self.source_parts, self.lists / "partial", self.cache / "archives/partial"):
            d.mkdir(parents=True, exist_ok=True)
        self.sources.write_text(f"deb [trusted=yes] file:{self.repo} ./\n")
        self.publish([])

    def build(self, package: Package) -> Path:
        tree = self.workdir / f"{package.name}_{package.version}"
        subprocess.run(["rm", "-rf", str(tree)], check=True)
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "DEBIAN/control").write_text(textwrap.dedent(f"""\
            Package: {package.name}
            Version: {package.version}
            Architecture: all
            Maintainer: boxkeeper tests <root@localhost>
            Section: misc
            Priority: optional
            Description: boxkeeper test package for test box {self.box.name}
             Built by tests/controller/workflows/aptrepo.py; every file lies under the box's root.
            """))
        if package.postinst is not None:
            script = tree / "DEBIAN/postinst"
            script.write_text("#!/bin/sh\n" + package.postinst + "\n")
            script.chmod(0o755)
        for path, content in package.files.items():
            target = tree / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        deb = self.workdir / f"{package.name}_{package.version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                       check=True, capture_output=True)
        self.built.add(package.name)
        return deb

    def publish(self, debs: list[Path]) -> None:
        """The repository holds exactly these packages (several versions of one name allowed)."""
        for old in self.repo.glob("*.deb"):
            old.unlink()
        for deb in debs:
            (self.repo / deb.name).write_bytes(deb.read_bytes())
        index = subprocess.run(["dpkg-scanpackages", "-m", ".", "/dev/null"], cwd=self.repo,
                               check=True, capture_output=True, text=True)
        (self.repo / "Packages").write_text(index.stdout)

    def dpkg_install(self, deb: Path) -> None:
        """Install a version directly (as if long ago: nothing of it in apt's cache)."""
        subprocess.run(["dpkg", "-i", str(deb)], check=True, capture_output=True)

    def installed(self, name: str) -> tuple[str, str]:
        """(dpkg status abbreviation such as ``ii`` / ``iF``, version) of a package."""
        out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}|${Version}", name],
                             capture_output=True, text=True)
        status, _, version = out.stdout.partition("|")
        return status.strip(), version

    def purge(self) -> None:
        names = set(self.built)
        listed = subprocess.run(["dpkg-query", "-W", "-f=${Package}\n", f"boxkeeper-test-*-{self.box.name}"],
                                capture_output=True, text=True)
        names.update(n for n in listed.stdout.split() if n)
        if names:
            subprocess.run(["dpkg", "--purge", "--force-all", *sorted(names)], capture_output=True)


def write_reboot_double(box: Box) -> Path:
    """TEST DOUBLE of ``systemctl reboot`` for a test box (the box is this machine: it cannot
    really reboot): a new boot id in ``run/boot_id``, ``run/reboot-required`` gone (as /run is
    emptied at boot), sshd killed with every session it serves (the controller's connection drops
    like at a real reboot) and started again, nginx and PHP-FPM restarted."""
    layout = box.layout
    cli = f"cd {REPO_ROOT} && {sys.executable} -m tests.boxes"
    where = f"--state-dir {layout.state_dir} --box {box.name}"
    script = layout.bin / "boxkeeper-test-reboot"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        # TEST DOUBLE of a reboot of test box {box.name} (tests/controller/workflows/aptrepo.py)
        cat /proc/sys/kernel/random/uuid > {layout.run}/boot_id
        rm -f {layout.run}/reboot-required
        ({cli} fault {where} --fault kill-sshd && {cli} fault {where} --fault kill-sshd --undo &&
         {cli} service {where} restart nginx && {cli} service {where} restart php-fpm) \\
          >> {layout.logs}/reboot-double.log 2>&1
        """))
    script.chmod(0o755)
    (layout.run / "boot_id").write_text("first-boot\n")
    return script
