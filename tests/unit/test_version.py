"""``pregbridge --version`` prints the installed distribution's version and exits 0."""

from __future__ import annotations

from importlib import metadata

import pytest

from server.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"pregbridge {metadata.version('pregbridge')}"
