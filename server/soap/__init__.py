"""SOAP faces (spyne): PREG, and later AR/FLR/HPR.

Importing this package first installs the spyne compatibility shim for Python 3.12+.
"""

from server.soap import spyne_compat as _spyne_compat  # noqa: F401  (must run before spyne is imported)

__all__: list[str] = []
