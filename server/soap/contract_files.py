"""The contract files the faces serve (``wsdl/``, ``xsd/``), found where they are installed.

``wsdl`` and ``xsd`` are data-only namespace packages: in a checkout (or an editable install) the
repository's own directories, in an installed wheel its package data (setup.cfg ``[options.package_data]``).
They are found through the import system, never relative to a module's ``__file__``. Not
``importlib.resources.files``: on Python 3.11 it refuses the namespace path of an editable install, which
holds the finder's hook beside the directory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

__all__ = ["contract_file"]


def contract_file(directory: Literal["wsdl", "xsd"], name: str) -> Path:
    """The path of ``directory/name`` (a wheel installs unpacked, so each is a real file)."""
    spec = importlib.util.find_spec(directory)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"contract file {directory}/{name} is not installed")
