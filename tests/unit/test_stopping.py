"""SIGTERM stops an asyncio run by cancelling its main task, whatever SIGINT's disposition (a job a
script put in the background has SIGINT ignored, and asyncio then sets no Ctrl-C handler)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from newswire import stopping
from newswire.cli import _main
from newswire.cli._common import session


@pytest.fixture
def background_job() -> Iterator[None]:
    """SIGINT ignored, as in a background job; the CLI's SIGTERM handler installed."""
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), session.terminated
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _main._on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        session.terminated = saved[2]
        stopping._stop_requested = False


@pytest.mark.usefixtures("background_job")
def test_sigterm_during_a_task_is_delivered_as_its_cancellation_at_the_next_await(caplog: pytest.LogCaptureFixture) -> None:
    cleaned: list[str] = []

    async def main() -> None:
        try:
            await asyncio.sleep(0)
            # the signal arrives while a task runs blocking code (a pool spawn, a state store call):
            # it was raised as KeyboardInterrupt right there, inside the task
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            time.sleep(0.6)  # noqa: ASYNC251 -- the blocking code the signal arrives in
            cleaned.append("blocking code finished")  # not broken off in the middle
            await asyncio.sleep(30)  # the stop lands here, as a cancellation
        except asyncio.CancelledError:
            cleaned.append("cancelled")
            raise
        finally:
            cleaned.append("done")

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(KeyboardInterrupt):
            stopping.run(main())
        gc.collect()  # asyncio reports an exception never retrieved when the task is collected
    assert time.monotonic() - started < 10
    assert cleaned == ["blocking code finished", "cancelled", "done"]
    assert session.terminated
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_without_a_run_there_is_nothing_to_stop() -> None:
    assert stopping.request_stop() is False
