"""Lets spyne 2.14.0 (the last release, 2022) import on Python 3.12 and 3.13.

spyne vendors six 1.14, whose import hook lacks ``find_spec`` (3.12 removed the fallback), and 3.13
removed the ``cgi`` module it uses (the ``legacy-cgi`` package brings it back). The fix maps every
``spyne.util.six*`` module spyne imports onto the real six and the standard library, before spyne is
imported; on 3.11 it does nothing. Measured by the project; upstream has
the fix on master (arskom/spyne#704) but no release.
"""

from __future__ import annotations

import sys

__all__: list[str] = []

if sys.version_info >= (3, 12) and "spyne" not in sys.modules:  # pragma: no cover - exercised on 3.12+
    import collections.abc
    import http.cookies
    import operator
    import urllib.error
    import urllib.parse
    import urllib.request

    import six

    six.get_function_name = operator.attrgetter("__name__")  # a spyne-only addition to its six
    for _name, _module in {
        "": six,
        ".moves": six.moves,
        ".moves.collections_abc": collections.abc,
        ".moves.http_cookies": http.cookies,
        ".moves.urllib": six.moves.urllib,
        ".moves.urllib.parse": urllib.parse,
        ".moves.urllib.request": urllib.request,
        ".moves.urllib.error": urllib.error,
    }.items():
        sys.modules["spyne.util.six" + _name] = _module
