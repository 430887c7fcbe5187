"""Client constructors under a deadline (connectors/kafka.py): kafka-python 3.0 can block for ever in a
constructor (a TLS handshake a plaintext broker never answers), so each runs in a daemon thread. A
long-running `run` retries every cycle; the threads it gives up on must not pile up."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from newswire.connectors.kafka import _build_with_deadline, _ConstructTimeout


class _Blocking:
    """A client whose constructor waits for ``release``; counts constructions and closes."""

    release = threading.Event()
    started = 0
    closed = 0

    def __init__(self, **config: Any) -> None:
        type(self).started += 1
        type(self).release.wait(30)
        if config.get("fail"):
            raise ValueError("bad setting")

    def close(self) -> None:
        type(self).closed += 1


def _fresh() -> type[_Blocking]:
    return type("Client", (_Blocking,), {"release": threading.Event(), "started": 0, "closed": 0})


def test_retries_with_the_same_settings_wait_for_the_constructor_already_running() -> None:
    client = _fresh()
    for _ in range(3):
        with pytest.raises(_ConstructTimeout):
            _build_with_deadline(client, {"bootstrap_servers": "x:1"}, 0.05)
    assert client.started == 1  # one thread, not three
    with pytest.raises(_ConstructTimeout):  # other settings: a constructor of their own
        _build_with_deadline(client, {"bootstrap_servers": "y:1"}, 0.05)
    assert client.started == 2

    # the next retry gets the client when the constructor returns at last: nothing is closed
    threading.Timer(0.2, client.release.set).start()
    built = _build_with_deadline(client, {"bootstrap_servers": "x:1"}, 10.0)
    assert isinstance(built, client) and client.started == 2
    deadline = time.monotonic() + 5
    while client.closed < 1 and time.monotonic() < deadline:  # y's constructor: nobody waits for it
        time.sleep(0.01)
    assert client.closed == 1


def test_a_constructor_that_finishes_unwanted_is_closed_and_the_next_call_starts_afresh() -> None:
    client = _fresh()
    with pytest.raises(_ConstructTimeout):
        _build_with_deadline(client, {"a": 1}, 0.05)
    client.release.set()
    deadline = time.monotonic() + 5
    while client.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.closed == 1
    built = _build_with_deadline(client, {"a": 1}, 5.0)
    assert isinstance(built, client) and client.started == 2 and client.closed == 1


def test_errors_of_the_constructor_reach_the_caller() -> None:
    client = _fresh()
    client.release.set()
    with pytest.raises(ValueError, match="bad setting"):
        _build_with_deadline(client, {"fail": True}, 5.0)


class _Interrupted(Exception):
    pass


def test_a_wait_interrupted_by_a_signal_leaves_no_client_open() -> None:
    """Ctrl-C (here a signal whose handler raises) during the wait: the client built afterwards is
    closed, as one given up on at the deadline would be."""
    import os
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    client = _fresh()
    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        with pytest.raises(_Interrupted):
            _build_with_deadline(client, {"b": 1}, 10.0)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    client.release.set()
    deadline = time.monotonic() + 5
    while client.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.closed == 1
