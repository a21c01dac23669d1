"""``python -m agent.bundle``: build the agent's offline bundle (and a .deb and an .rpm of it).

::

    python -m agent.bundle [--out dist] [--version V] [--cache DIR] [--deb] [--rpm] [--source DIR]

Prints the path of each file built. Exit 0; 1 when a download or a build tool failed (the message
says which and why); 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from agent import __version__
from agent.bundle import build, packages, wheels
from agent.bundle.errors import BundleError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.bundle", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="dist", help="where to write the files (default: dist)")
    p.add_argument("--version", default=__version__,
                   help=f"the agent version to build (default: {__version__})")
    p.add_argument("--cache", default=None,
                   help=f"downloaded wheels are kept here between builds (default: {wheels.default_cache()})")
    p.add_argument("--deb", action="store_true", help="also build a .deb (dpkg-deb)")
    p.add_argument("--rpm", action="store_true", help="also build an .rpm (rpmbuild)")
    p.add_argument("--source", default=None,
                   help="the agent package to build from (default: this checkout's)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else None
    source = Path(args.source) if args.source else None
    try:
        bundle = build.build(out, version=args.version, cache=cache, source=source)
        print(bundle.tarball)
        if args.deb:
            print(packages.deb(bundle, out))
        if args.rpm:
            print(packages.rpm(bundle, out))
    except BundleError as exc:
        print(f"agent.bundle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
