"""Prefect's temporary API server, started in a session of its own.

Without ``PREFECT_API_URL`` Prefect starts a temporary API server (a uvicorn child process) the first time
a flow runs, and stops it when the process exits. It starts that child in newswire's process group, so
a Ctrl-C at a terminal (which signals the whole foreground group) or a service manager stopping the
group stopped the server together with newswire: a flow run interrupted mid-cycle then spent ~75 s
retrying to report its crash to a server that was gone, and ended as an internal error; one interrupted
during the server's first start waited out the whole start-up timeout. Started here first, in a session
of its own, the server only stops when newswire stops it (Prefect's exit hook), after the run has
reported how it ended; Prefect then reuses this instance (one per process).

Prefect stops the server from an exit hook, which a SIGKILL (the OOM killer, ``kill -9``) never runs: on
Linux the server is also asked to stop (SIGTERM) by the kernel when newswire dies, so that a killed run
leaves no server behind to hold its memory and port while the next run starts another.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _stop_when_parent_dies() -> Callable[[], None] | None:
    """A preexec function that has the kernel send the child SIGTERM when this process dies (Linux's
    parent-death signal); None elsewhere, or where libc cannot be loaded. The kernel sends it when the
    thread that started the child ends: newswire starts the server from its main thread."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        # only system calls here: this runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was in place
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


class _InOwnSession(subprocess.Popen):  # type: ignore[type-arg]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["start_new_session"] = True
        if kwargs.get("preexec_fn") is None:
            kwargs["preexec_fn"] = _stop_when_parent_dies()
        super().__init__(*args, **kwargs)


def start_temporary_api() -> str | None:
    """Start Prefect's temporary API server now, in its own session, and return its URL; None when
    Prefect would not start one (``PREFECT_API_URL`` is set, or ephemeral servers are disabled)."""
    from prefect.server.api import server as prefect_server
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    instance = prefect_server.SubprocessASGIServer()
    if not instance.running:
        # Prefect has no option for this: its module's own name for subprocess is swapped, for the
        # start only, for one whose Popen starts a new session. Should a release start the server some
        # other way, this changes nothing and the server starts as Prefect starts it.
        own = getattr(prefect_server, "subprocess", None)
        if own is subprocess:
            prefect_server.subprocess = SimpleNamespace(  # type: ignore[assignment,attr-defined]
                Popen=_InOwnSession, TimeoutExpired=subprocess.TimeoutExpired
            )
        started = time.monotonic()
        try:
            instance.start()
        finally:
            if own is subprocess:
                prefect_server.subprocess = subprocess  # type: ignore[attr-defined]
        log.info("Prefect's temporary API server is up on %s (%.1f s)", instance.api_url, time.monotonic() - started)
    return str(instance.api_url)
