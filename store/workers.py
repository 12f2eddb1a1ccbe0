"""Worker process pools whose workers end when the process that started them dies.

A :class:`~concurrent.futures.ProcessPoolExecutor` worker waits on its call queue for the next task, and its
parent's death does not wake it: the worker holds that queue's write end itself (a spawned worker unpickles the
whole queue, a forked one inherits it), so its read never sees the end of the file. When ``pregbridge load`` or
``pregbridge sync`` is killed — the OOM killer, ``kill -9``, a container stopped past its grace period — its
workers would wait for ever, each holding its imports and memory (seen: the test suite left 18 such workers
behind from the tests that kill a load or a sync on purpose).

:func:`exit_with_parent`, run first in every worker, starts a daemon thread that looks once a second whether the
worker's parent is still the process that started it (``os.getppid()`` changes when the parent dies: the worker
is handed to init or a subreaper) and ends the worker at once if not (``os._exit``: there is nobody left to
answer). Written here because neither the standard library nor a well-kept package does it: Linux's
``prctl(PR_SET_PDEATHSIG)`` fires on the death of the parent *thread*, and a pool may start a worker from one of
its own threads.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["WATCH_INTERVAL", "exit_with_parent", "spawn_pool"]

WATCH_INTERVAL = 1.0  # seconds between two looks at the parent


def exit_with_parent(interval: float = WATCH_INTERVAL) -> None:
    """End this process (exit status 1) within ``interval`` seconds of its parent's death."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _start(initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    exit_with_parent()
    if initializer is not None:
        initializer(*initargs)


def spawn_pool(workers: int, initializer: Callable[..., Any] | None = None,
               initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` *spawned* processes (not forked: the caller may have threads, and forking a threaded
    process can leave a lock held in the child for ever) that end with their parent (module docstring)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                               initargs=(initializer, initargs))
