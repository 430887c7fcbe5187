"""The extraction pool's workers leave SIGINT and SIGTERM to the parent: Ctrl-C at a terminal signals the
whole process group, and a worker that took it printed a KeyboardInterrupt traceback (or died and broke
the pool under the parent's tasks)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from newswire.pool import extraction_pool


def _dispositions() -> tuple[int, bool, bool]:
    return os.getpid(), signal.getsignal(signal.SIGINT) is signal.SIG_IGN, signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_workers_ignore_the_signals_the_parent_handles() -> None:
    with extraction_pool(2) as pool:
        pid, ignores_int, ignores_term = pool.submit(_dispositions).result(timeout=120)
        assert pid != os.getpid()
        assert ignores_int and ignores_term
        os.kill(pid, signal.SIGINT)  # a terminal's Ctrl-C reaching the worker too
        os.kill(pid, signal.SIGTERM)
        assert pool.submit(_dispositions).result(timeout=60)[1:] == (True, True)  # the pool still works
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the parent keeps its own


def test_a_replay_stopped_early_cancels_the_parses_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay stopped by a signal leaves its parses in flight: cancelled, they are neither waited for
    nor reported by asyncio as exceptions never retrieved (a worker the stop broke fails them)."""
    from newswire import replay

    release = threading.Event()

    def parse(ref: int, *args: object) -> str:
        if ref:  # every parse after the first is still running when the replay stops
            release.wait(timeout=30)
        return f"parsed {ref}"

    monkeypatch.setattr(replay, "parse_archived_feed", parse)
    docs = [SimpleNamespace(ref=i, uri=f"http://127.0.0.1/{i}", content_type="application/rss+xml", date=None) for i in range(6)]

    async def first_then_stop() -> list[asyncio.Future[object]]:
        loop = asyncio.get_running_loop()
        made: list[asyncio.Future[object]] = []
        real = loop.run_in_executor

        def tracked(executor: Any, *args: Any) -> asyncio.Future[object]:
            future: asyncio.Future[object] = real(executor, *args)
            made.append(future)
            return future

        monkeypatch.setattr(loop, "run_in_executor", tracked)
        with ThreadPoolExecutor(4) as pool:
            parsed = replay._parsed_in_order(docs, pool, ahead=4)  # type: ignore[arg-type]
            assert (await parsed.__anext__())[1] == "parsed 0"
            await parsed.aclose()  # what a cancelled replay does to it
            release.set()
        return made

    made = asyncio.run(first_then_stop())
    assert len(made) == 5 and made[0].done() and not made[0].cancelled()
    assert all(future.cancelled() for future in made[1:])


def test_workers_and_forkserver_end_when_the_parent_is_killed() -> None:
    """SIGKILL (the OOM killer) skips the pool's shutdown: its workers waited on their queue for good,
    and kept the forkserver alive with them (~390 MB, ignoring SIGTERM)."""
    import subprocess
    import sys
    import time

    script = (
        "import os, sys\n"
        "from newswire.pool import extraction_pool\n"
        "pool = extraction_pool(2)\n"
        "print(' '.join(str(p) for p in {pool.submit(os.getppid).result(), *[pool.submit(os.getpid).result() for _ in range(4)]}), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) >= 2  # the forkserver and at least one worker

    def alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split(") ", 1)[1][0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:  # nothing left running should the assertion fail
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"{left} outlived the killed parent"
