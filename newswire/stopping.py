"""Stopping an asyncio run on SIGTERM whatever SIGINT's disposition.

asyncio.run cancels its main task on Ctrl-C only when SIGINT has Python's default handler at its start.
A job a script or cron put in the background has SIGINT ignored: there the CLI's SIGTERM handler found no
handler to hand the stop to and raised KeyboardInterrupt wherever the main thread was, inside some task
("Task exception was never retrieved" on the terminal) while the run went on. :func:`run` registers the
main task, and :func:`request_stop` cancels it as asyncio's own Ctrl-C handler does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["request_stop", "run"]

T = TypeVar("T")

_stoppers: list[Callable[[], None]] = []
_stop_requested = False


def request_stop() -> bool:
    """Cancel the running :func:`run`'s main task (from a signal handler); False when none runs."""
    global _stop_requested
    if not _stoppers:
        return False
    _stop_requested = True
    for stop in _stoppers:
        stop()
    return True


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``; a stop requested while it runs ends it with KeyboardInterrupt, as a Ctrl-C
    asyncio handles does, after the main task's cancellation has run its clean-up."""

    async def stoppable() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop() -> None:
            loop.call_soon_threadsafe(task.cancel)

        _stoppers.append(stop)
        try:
            return await main
        finally:
            _stoppers.remove(stop)

    try:
        return asyncio.run(stoppable())
    except asyncio.CancelledError:
        if _stop_requested:
            raise KeyboardInterrupt from None
        raise
