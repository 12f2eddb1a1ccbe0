"""pregbridge's version: the installed distribution's (setup.cfg ``[metadata] version``)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["version"]


def version() -> str:
    """The version of the installed ``pregbridge`` distribution ("unknown" when run from a tree never installed)."""
    try:
        return metadata.version("pregbridge")
    except metadata.PackageNotFoundError:
        return "unknown"
