"""Pool workers end when the process that started them is killed (store/workers.py).

A parent process holding a pool (``spawn_pool``, as ``pregbridge load`` and ``sync`` hold theirs, and
filematch.local's wash pool) is killed with SIGKILL; its workers must be gone within a few seconds. The
control: a plain ProcessPoolExecutor's workers are still waiting after the same kill (what the suite used to
leave behind), so the check can fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_PARENT = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from store.workers import spawn_pool

def pid(_):
    time.sleep(0.2)  # so that both workers take one task each
    return os.getpid()

if __name__ == "__main__":
    if sys.argv[1] == "spawn_pool":
        pool = spawn_pool(2)
    elif sys.argv[1] == "wash":  # filematch.local's pool: forked, with its own initializer
        from filematch.local import _init_worker
        pool = ProcessPoolExecutor(2, initializer=_init_worker, initargs=("sqlite:///" + sys.argv[2],))
    else:
        pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    print(" ".join(str(p) for p in sorted(set(pool.map(pid, range(8))))), flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running or sleeping (a zombie has exited: only its exit status waits for whoever reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _workers_after_kill(kind: str, tmp_path: Path, wait: float) -> list[int]:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, str(script), kind, str(tmp_path / "store.sqlite")]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env) as parent:
        try:
            assert parent.stdout is not None
            workers = [int(p) for p in parent.stdout.readline().split()]
            assert len(workers) == 2 and all(_alive(p) for p in workers)
        finally:
            parent.send_signal(signal.SIGKILL)
            parent.wait()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    return [p for p in workers if _alive(p)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_the_workers_of_a_killed_parent_end(tmp_path: Path) -> None:
    assert _workers_after_kill("spawn_pool", tmp_path, wait=10.0) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_the_wash_workers_of_a_killed_parent_end(tmp_path: Path) -> None:
    assert _workers_after_kill("wash", tmp_path, wait=10.0) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_plain_pools_workers_outlive_a_killed_parent(tmp_path: Path) -> None:
    left = _workers_after_kill("plain", tmp_path, wait=3.0)
    try:
        assert len(left) == 2  # what store.workers is for
    finally:
        for pid in left:
            os.kill(pid, signal.SIGKILL)
