"""The wheels of the bundle: the agent's own, and its dependencies for every supported Python.

``pip download --only-binary=:all: --platform manylinux2014_x86_64 --python-version V`` resolves
the pinned ``requirements.txt`` for each Python as pip on that Python would, so a version without a
wheel for 3.9 fails here, at build time, not on a customer's box. Downloads are kept in a cache
directory (default ``~/.cache/boxkeeper/wheels``, one sub-directory per Python) and reused offline
(``--no-index --find-links``) when they satisfy the pins; only what is missing is fetched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

from agent.bundle.errors import BundleError

#: Pythons whose wheels the bundle carries (the agent runs on 3.9 to 3.13: docs/agent.md)
PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
#: glibc 2.17 and later (pip also takes the older manylinux2010/manylinux1 wheels for it)
PLATFORM = "manylinux2014_x86_64"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
PACKAGE = Path(__file__).resolve().parents[1]  # agent/


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "boxkeeper" / "wheels"


def pins(requirements: Path = REQUIREMENTS) -> list[str]:
    """The ``name==version`` lines of the requirements file."""
    lines = [line.split("#", 1)[0].strip() for line in requirements.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _pip(args: list[str], what: str, *, timeout: float = 600) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise BundleError(f"{what} failed (pip exit {proc.returncode}):\n{tail}")


def download(python: str, cache: Path, requirements: Path = REQUIREMENTS) -> list[Path]:
    """The dependency wheels for CPython ``python`` on manylinux x86_64 (and pip's own with the
    oldest Python): from the cache when it has them, else from the index. Returns the wheel files."""
    where = cache / python
    where.mkdir(parents=True, exist_ok=True)
    # pip runs the install on the box from its wheel: one for all, the newest for the oldest Python
    wanted = [*pins(requirements), *(["pip"] if python == PYTHONS[0] else [])]
    common = ["download", "--only-binary=:all:", "--platform", PLATFORM, "--python-version", python,
              "--implementation", "cp", "-d", str(where), "-q"]
    try:
        _pip([*common, "--no-index", "--find-links", str(where), *wanted], "offline")
    except BundleError:
        _pip([*common, *wanted], f"downloading the agent's dependencies for Python {python}")
    # the files of this resolution only (the cache may hold older versions too)
    names = {_canonical(re.split(r"[=<>~!]", spec, maxsplit=1)[0]) for spec in wanted}
    versions = {_canonical(spec.split("==")[0]): spec.split("==")[1] for spec in wanted if "==" in spec}
    chosen: dict[str, Path] = {}
    for wheel in sorted(where.glob("*.whl")):
        name, version = _canonical(wheel.name.split("-")[0]), wheel.name.split("-")[1]
        if name not in names or (name in versions and version != versions[name]):
            continue
        if not _fits(wheel.name, python):
            continue
        if name not in chosen or _newer(version, chosen[name].name.split("-")[1]):
            chosen[name] = wheel
    missing = names - set(chosen)
    if missing:
        raise BundleError(f"no wheel for Python {python} of: {', '.join(sorted(missing))}")
    return sorted(chosen.values())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _fits(filename: str, python: str) -> bool:
    """Whether a wheel's Python tag is usable by CPython ``python`` (``py3``, ``cp39``, ``cp36-abi3``)."""
    py_tag, abi_tag = filename[:-4].split("-")[-3:-1]
    nodot = python.replace(".", "")
    tags = py_tag.split(".")
    if "py3" in tags or f"cp{nodot}" in tags:
        return True
    if abi_tag == "abi3":
        return any(t.startswith("cp3") and int(t[3:]) <= int(nodot[1:]) for t in tags)
    return False


def _newer(a: str, b: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v))
    return key(a) > key(b)


PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "boxkeeper-agent"
version = "{version}"
description = "boxkeeper agent: health checks, Prometheus metrics and durable reports for a customer box"
requires-python = ">=3.9"
license = {{text = "Apache-2.0"}}
dependencies = [{dependencies}]

[project.scripts]
boxkeeper-agent = "agent.cli:main"

[tool.setuptools.packages.find]
include = ["agent*"]
exclude = ["agent.bundle*"]

[tool.setuptools.package-data]
agent = ["py.typed"]
"""


def agent_wheel(out: Path, version: str, *, source: Optional[Path] = None) -> Path:
    """Build ``boxkeeper_agent-VERSION-py3-none-any.whl`` from the ``agent`` package (``source``,
    default this checkout's) into ``out``: a copy with ``__version__`` set to ``version``, without
    this bundle subpackage, and a generated pyproject (Python >= 3.9, the pinned dependencies)."""
    source = source or PACKAGE
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="boxkeeper-agent-wheel-") as tmp:
        src = Path(tmp) / "src"
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "bundle")
        shutil.copytree(source, src / "agent", ignore=skip)
        init = src / "agent" / "__init__.py"
        text, count = re.subn(r'^__version__ = ".*"$', f'__version__ = "{version}"',
                              init.read_text(encoding="utf-8"), flags=re.M)
        if count != 1:
            raise BundleError(f"{source}/__init__.py: no `__version__ = \"...\"` line to set")
        init.write_text(text, encoding="utf-8")
        deps = ", ".join(f'"{spec}"' for spec in pins())
        (src / "pyproject.toml").write_text(PYPROJECT.format(version=version, dependencies=deps),
                                            encoding="utf-8")
        # setuptools of this environment when it has one, else pip fetches it (build isolation)
        isolation = ["--no-build-isolation"] if _has_setuptools() else []
        _pip(["wheel", "--no-deps", *isolation, "-q", "-w", str(out), str(src)], "building the agent's wheel")
    wheels = sorted(out.glob(f"boxkeeper_agent-{version}-*.whl"))
    if not wheels:
        raise BundleError(f"pip built no boxkeeper_agent-{version} wheel in {out}")
    return wheels[-1]


def _has_setuptools() -> bool:
    # bdist_wheel: in setuptools since 70.1, before that in the `wheel` package
    probe = ("import setuptools.build_meta\ntry:\n    import setuptools.command.bdist_wheel\n"
             "except ImportError:\n    import wheel.bdist_wheel")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60, check=False)
    return proc.returncode == 0
