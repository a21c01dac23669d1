"""Errors of the bundle builder: one kind, with a message that says what failed and why."""

from __future__ import annotations


class BundleError(Exception):
    """The bundle could not be built (a download, the wheel build, dpkg-deb or rpmbuild failed)."""
