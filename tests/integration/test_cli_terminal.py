"""What the operator sees on a terminal: progress bars that end at their total (demo-data's ran to 300 %), run
under a pseudo-terminal so that rich draws them as it does for a person."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def on_a_terminal(*argv: str, cwd: Path, module: str = "server", **env_extra: str) -> tuple[int, str]:
    """Run ``python -m MODULE ARGV`` with stderr on a pseudo-terminal (stdout piped); (exit code, terminal text)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="120", TERM="xterm", **env_extra)
    proc = subprocess.Popen([sys.executable, "-m", module, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.stdout is not None
    proc.stdout.read()
    proc.stdout.close()
    code = proc.wait(120)
    os.close(master)
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


def test_demo_data_progress_ends_at_its_total(tmp_path: Path) -> None:
    code, screen = on_a_terminal("--data-dir", str(tmp_path), "demo-data", "--persons", "4500", "--out",
                                 str(tmp_path / "demo"), cwd=ROOT)
    assert code == 0, screen
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", screen)]
    assert counts and counts[-1] == (4500, 4500)
    assert all(done <= total for done, total in counts), counts  # never past 100 %
