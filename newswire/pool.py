"""The extraction process pool: forkserver-started workers that find the extractor (and its language
model) already loaded. Standard library only, so the CLI can start the forkserver before its own
imports are done: the forkserver's preload (~1 s of CPU on these machines) then runs on the other core
while the main process is still importing.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver

__all__ = ["PRELOAD", "extraction_pool", "ignore_stop_signals", "start_forkserver"]

# imported by the forkserver before it forks a worker (the extractor and py3langid's model)
PRELOAD = ["newswire.worker_preload"]


def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_forkserver() -> None:
    """Start the forkserver now (it preloads in the background); a no-op when it is running."""
    _context()
    forkserver.ensure_running()


def ignore_stop_signals() -> None:
    """In a pool worker: Ctrl-C at a terminal signals every process of the foreground group, and a
    service manager's stop may signal every process of the service. A worker that took the signal
    printed a KeyboardInterrupt traceback from wherever it was, or died and broke the pool under the
    parent's tasks (whose errors asyncio then reported as never retrieved). The parent alone handles
    SIGINT and SIGTERM and shuts the pool down; SIGKILL still ends a worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _exit_when_gone(parent: int) -> None:
    """Wait for ``parent`` to end (a pidfd where Linux has one, else a check every 2 s), then end this
    process at once: the pool's parent is gone and nothing will ever be asked of it again."""
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        select.select([pidfd], [], [])
    else:
        while True:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
            except OSError:
                pass
            time.sleep(2.0)
    os._exit(0)


def _init_worker(parent: int) -> None:
    """A pool worker's start: stop signals left to the parent, and an end of its own when the parent
    dies without shutting the pool down (SIGKILL, the OOM killer). Otherwise a killed run left its
    workers and the forkserver (~390 MB) running for good: each worker waits on a queue whose writing
    end it holds itself, and holds the forkserver's "alive" pipe, so neither ever sees an end."""
    ignore_stop_signals()
    threading.Thread(target=_exit_when_gone, args=(parent,), name="parent-watch", daemon=True).start()


def extraction_pool(workers: int = 0) -> ProcessPoolExecutor:
    """Extraction is CPU-bound: a process pool, started by forkserver so the parent's threads
    (kafka-python's sender, the event loop) are never forked mid-lock. Its workers leave stop signals
    to the parent: from the forkserver's preload on, and from the initializer whatever started the
    forkserver (a forkserver already running keeps the preload it was started with). They end when
    the parent does, however it ends; the forkserver then follows."""
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1,
        mp_context=_context(),
        initializer=_init_worker,
        initargs=(os.getpid(),),
    )
