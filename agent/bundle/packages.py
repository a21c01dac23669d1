"""A ``.deb`` and an ``.rpm`` of the bundle, for those who install with their distribution's tools.

Both hold the bundle's files in ``/opt/boxkeeper/bundle/`` and run its ``install.sh`` from their
scripts: after installing (venv from the wheels, user, directories, service), before removing
(``install.sh uninstall``; an upgrade keeps the version before as the rollback), and ``dpkg --purge``
also removes ``/etc/boxkeeper``. Built with ``dpkg-deb`` and ``rpmbuild`` (Debian's ``rpm``
package); no other tooling.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from agent.bundle.build import Bundle
from agent.bundle.errors import BundleError

BUNDLE_DIR = "opt/boxkeeper/bundle"
SUMMARY = "boxkeeper agent: health checks, Prometheus metrics and reports for a customer box"

CONTROL = """\
Package: boxkeeper-agent
Version: {version}
Architecture: amd64
Maintainer: boxkeeper <boxkeeper@localhost>
Depends: python3 (>= 3.9), passwd, util-linux
Section: admin
Priority: optional
Description: {summary}
 Installs a venv of the box's own python3 in /opt/boxkeeper from the wheels
 shipped in the package (no network), the user boxkeeper and the service.
"""

POSTINST = """\
#!/bin/sh
set -e
case "$1" in
  configure) /{bundle}/install.sh install ;;
esac
"""

PRERM = """\
#!/bin/sh
set -e
case "$1" in
  remove|deconfigure) /{bundle}/install.sh uninstall ;;
esac
"""

POSTRM = """\
#!/bin/sh
set -e
case "$1" in
  purge) rm -rf /etc/boxkeeper; rmdir /opt/boxkeeper 2>/dev/null || true ;;
esac
"""

SPEC = """\
Name: boxkeeper-agent
Version: {version}
Release: 1
Summary: {summary}
License: Apache-2.0
BuildArch: x86_64
AutoReqProv: no
Requires: python3 >= 3.9, shadow-utils, util-linux
%define __os_install_post %{{nil}}
%define _build_id_links none

%description
Installs a venv of the box's own python3 in /opt/boxkeeper from the wheels shipped in the package
(no network), the user boxkeeper and the service.

%install
mkdir -p %{{buildroot}}/opt/boxkeeper
cp -a {stage}/{bundle} %{{buildroot}}/opt/boxkeeper/

%files
/{bundle}

%post
/{bundle}/install.sh install

%preun
if [ "$1" -eq 0 ]; then /{bundle}/install.sh uninstall; fi
"""


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError:
        raise BundleError(f"{what}: {argv[0]} not found (Debian: apt-get install "
                          f"{'rpm' if argv[0] == 'rpmbuild' else 'dpkg'})") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BundleError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _unpack(bundle: Bundle, root: Path) -> None:
    """The tarball's top directory as ``root/opt/boxkeeper/bundle``."""
    with tarfile.open(bundle.tarball) as tar:
        tar.extractall(root / "unpacked", filter="data")
    (root / BUNDLE_DIR).parent.mkdir(parents=True, exist_ok=True)
    (root / "unpacked" / f"boxkeeper-agent-{bundle.version}").rename(root / BUNDLE_DIR)
    shutil.rmtree(root / "unpacked")


def deb(bundle: Bundle, out: Path) -> Path:
    """``boxkeeper-agent_VERSION_amd64.deb`` in ``out``."""
    with tempfile.TemporaryDirectory(prefix="boxkeeper-deb-") as tmp:
        root = Path(tmp) / "root"
        _unpack(bundle, root)
        debian = root / "DEBIAN"
        debian.mkdir()
        (debian / "control").write_text(CONTROL.format(version=bundle.version, summary=SUMMARY))
        for script, text in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
            (debian / script).write_text(text.format(bundle=BUNDLE_DIR))
            (debian / script).chmod(0o755)
        target = out / f"boxkeeper-agent_{bundle.version}_amd64.deb"
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(target)], "dpkg-deb")
    return target


def rpm(bundle: Bundle, out: Path) -> Path:
    """``boxkeeper-agent-VERSION-1.x86_64.rpm`` in ``out``."""
    with tempfile.TemporaryDirectory(prefix="boxkeeper-rpm-") as tmp:
        stage = Path(tmp) / "stage"
        _unpack(bundle, stage)
        spec = Path(tmp) / "boxkeeper-agent.spec"
        spec.write_text(SPEC.format(version=bundle.version.replace("-", "_"), summary=SUMMARY, stage=stage,
                                    bundle=BUNDLE_DIR))
        top = Path(tmp) / "rpmbuild"
        _run(["rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {top}", "--define", f"_rpmdir {top}/RPMS",
              str(spec)], "rpmbuild")
        built = sorted((top / "RPMS").rglob("*.rpm"))
        if not built:
            raise BundleError(f"rpmbuild wrote no .rpm under {top}/RPMS")
        target = out / built[0].name
        shutil.copyfile(built[0], target)
    return target
