"""A self-signed certificate and its key made by the real openssl, for tests that serve TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(cert: Path, key: Path, *, cn: str, ip: str | None = None, days: int = 2) -> tuple[Path, Path]:
    """Write a P-256 certificate for ``cn`` (and ``ip`` as its subjectAltName) and its key."""
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", f"/CN={cn}"]
    if ip is not None:
        cmd += ["-addext", f"subjectAltName=IP:{ip}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return cert, key
