"""``boxkeeper-agent-VERSION-linux-x86_64.tar.gz``: everything a box needs to install the agent
with no network.

::

    boxkeeper-agent-VERSION/
      install.sh                 installer and service control (runs on the box, POSIX sh)
      boxkeeper-agent.service    the systemd unit (config/systemd/)
      boxkeeper-agent.init       the init script for boxes without systemd (paths filled in by install.sh)
      wheels/                    boxkeeper_agent-VERSION-py3-none-any.whl, the pinned dependencies for
                                 CPython 3.9-3.13 (manylinux2014 x86_64), pip
      SHA256SUMS                 checked by install.sh before it installs anything
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from agent import __version__
from agent.bundle import wheels
from agent.bundle.errors import BundleError

HERE = Path(__file__).resolve().parent
UNIT = HERE.parents[1] / "config" / "systemd" / "boxkeeper-agent.service"
ARCH = "linux-x86_64"


@dataclass(frozen=True)
class Bundle:
    version: str
    tarball: Path


def name(version: str) -> str:
    return f"boxkeeper-agent-{version}"


def stage(directory: Path, version: str, *, cache: Path, source: Optional[Path] = None) -> Path:
    """Lay out the bundle's files in ``directory/boxkeeper-agent-VERSION`` and return that path."""
    if not UNIT.is_file():
        raise BundleError(f"{UNIT} not found: build the bundle from a boxkeeper checkout")
    top = directory / name(version)
    wheel_dir = top / "wheels"
    wheel_dir.mkdir(parents=True)
    wheels.agent_wheel(wheel_dir, version, source=source)
    for python in wheels.PYTHONS:
        for wheel in wheels.download(python, cache):
            if not (wheel_dir / wheel.name).exists():
                shutil.copy2(wheel, wheel_dir / wheel.name)
    installer = (HERE / "install.sh").read_text(encoding="utf-8").replace("@VERSION@", version)
    (top / "install.sh").write_text(installer, encoding="utf-8")
    (top / "install.sh").chmod(0o755)
    shutil.copyfile(HERE / "boxkeeper-agent.init", top / "boxkeeper-agent.init")
    shutil.copyfile(UNIT, top / "boxkeeper-agent.service")
    sums = []
    for path in sorted(p for p in top.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sums.append(f"{digest}  {path.relative_to(top)}\n")
    (top / "SHA256SUMS").write_text("".join(sums), encoding="utf-8")
    return top


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build(out: Path, *, version: str = __version__, cache: Optional[Path] = None,
          source: Optional[Path] = None) -> Bundle:
    """Build the tarball into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="boxkeeper-bundle-") as tmp:
        top = stage(Path(tmp), version, cache=cache or wheels.default_cache(), source=source)
        tarball = out / f"{name(version)}-{ARCH}.tar.gz"
        partial = tarball.with_name(tarball.name + ".part")
        with tarfile.open(partial, "w:gz") as tar:
            tar.add(top, arcname=top.name, filter=_reset)
        partial.replace(tarball)
    return Bundle(version, tarball)
