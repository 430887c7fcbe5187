"""Prefect flow of a poll cycle: the feed list in batches, a task per batch (never per article).

``run --once`` calls :func:`run_poll_flow` when a Prefect API is configured (or ``--prefect``); ``run``
without ``--once`` calls :func:`serve_poll`, which serves the flow on an interval schedule. For a work
pool deployment see ``prefect.yaml`` at the repository root.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from newswire.config import (
    Settings,
    default_state_dir,
    settings_from_env,
    settings_from_params,
    settings_to_params,
)
from newswire.logs import (
    FILE_ONLY,
    LOG_FILE_NAME,
    prefect_console_to_log_env,
    quiet_prefect,
    route_prefect_logs_to_file,
    setup_logging,
)

quiet_prefect(default_state_dir() / "prefect")  # before Prefect is imported; the CLI may have set it already

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from newswire.connectors.feedlist import FeedListError, read_feed_list
from newswire.connectors.kafka import BrokerUnavailable
from newswire.connectors.state import StateError
from newswire.contract import utc_now
from newswire.live import count_cycle, run_once
from newswire.pipeline import RunSummary
from newswire.processors.taxonomy import TaxonomyError

log = logging.getLogger(__name__)

route_prefect_logs_to_file()

DEFAULT_BATCH = 500
# Set by serve_poll for the flow runs the Prefect runner starts in child processes: the CLI's -v count.
SERVED_VERBOSITY = "NEWSWIRE_SERVED_VERBOSITY"
# Logger of what Prefect prints or writes to stderr itself: outside Prefect's "prefect." hierarchy, whose
# flow-run loggers also send to Prefect's API (a line about the API being gone would go back to it, and
# its failure to the terminal); its name still starts with "prefect", so the terminal shows it from -vv.
PREFECT_OUTPUT = "prefect_output"
# What ends one cycle of a long-running `run` but not the run: the broker or state store away, or the
# feed list or taxonomy file broken by an edit (half saved, say); the next cycle tries again.
CYCLE_ERRORS = (BrokerUnavailable, StateError, FeedListError, TaxonomyError)


@task(name="poll-batch", cache_policy=NO_CACHE, retries=0)
def poll_batch(
    feeds_file: str, params: dict[str, Any], poll_all: bool, interval_minutes: float, polled_before: str | None
) -> dict[str, Any]:
    """Lease a batch of due feeds (``lease_batch`` of the settings) and poll them."""
    settings = settings_from_params(params)
    summary = run_once(
        settings,
        read_feed_list(Path(feeds_file)),
        poll_all=poll_all,
        interval=timedelta(minutes=interval_minutes),
        polled_before=datetime.fromisoformat(polled_before) if polled_before else None,
    )
    return asdict(summary)


@flow(name="newswire-poll", log_prints=False)
def poll(
    feeds_file: str,
    params: dict[str, Any] | None = None,
    poll_all: bool = False,
    interval_minutes: float = 15.0,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int = 0,
) -> dict[str, Any]:
    """Poll the due feeds of ``feeds_file`` (OPML or plain list) once; returns the run summary.

    A task per batch: each leases ``batch_size`` due feeds in the state store that no other run holds,
    so flow runs on many workers share the list with no other configuration; the run ends when no due
    feed is left (or after ``max_batches``). ``params`` are the settings (as the CLI passes them); a
    deployment leaves them out and the worker's ``NEWSWIRE_*`` environment decides.
    """
    params = dict(params if params is not None else settings_to_params(settings_from_env()))
    params["lease_batch"] = max(batch_size, 1)
    served = os.environ.get(SERVED_VERBOSITY)
    verbosity = int(served or 0)
    log_file: Path | None = None
    if served is not None:  # a run `newswire run` serves: logs and the cycle's line as in a run without a server
        log_file = setup_logging(verbosity, settings_from_params(params).state_dir / LOG_FILE_NAME)
        route_prefect_logs_to_file()
        # Prefect writes to sys.stderr itself ("--- Error logging to API ---" when its server went away,
        # up to this process's exit): to the log file. newswire's own warnings keep the terminal's stream.
        sys.stderr = _ToLog(logging.getLogger(f"{PREFECT_OUTPUT}.flow_run"))
    started = utc_now().isoformat()
    total = RunSummary()
    batches = 0
    with _noting_stop_signal():
        while True:
            try:
                part = poll_batch(str(Path(feeds_file)), params, poll_all, interval_minutes, started)
            except CYCLE_ERRORS as exc:
                count_cycle(None, exc)
                if served is not None:
                    print(f"cycle not completed: {exc}; trying again at the next scheduled run", flush=True)
                    log.warning("cycle not completed: %s", exc, extra=FILE_ONLY)
                raise
            except Exception as exc:
                count_cycle(None, exc)
                if served is not None:  # the service goes on; without this line the failure is silent
                    log.exception("internal error in a served cycle")
                    where = f"traceback in {log_file}" if log_file is not None else "no log file could be written"
                    print(
                        f"cycle failed: internal error: {type(exc).__name__}: {exc} ({where}); "
                        "trying again at the next scheduled run",
                        flush=True,
                    )
                raise
            total.add(RunSummary(**part))
            batches += 1
            if not part.get("feeds_polled") or (max_batches and batches >= max_batches):
                break
    count_cycle(total)
    if served is not None and (verbosity >= 1 or cycle_did_something(total)):
        print(total.line(), flush=True)
    if served is not None:
        log.info("%s", total.line(), extra=FILE_ONLY)
    create_table_artifact(
        key="newswire-poll-summary",
        table=summary_table(total),
        description=f"newswire poll: {total.line()}",
    )
    return asdict(total)


def summary_table(summary: RunSummary) -> list[dict[str, Any]]:
    """The flow run's table artifact: feeds polled, new articles, articles per topic, failures."""
    rows: list[tuple[str, int]] = [
        ("feeds polled", summary.feeds_polled),
        ("feeds not modified (304)", summary.feeds_not_modified),
        ("feeds failed", summary.feeds_failed),
        ("new articles published", summary.published),
        ("duplicates skipped", summary.duplicates),
    ]
    rows += [(f"articles on topic {slug}", count) for slug, count in sorted(summary.topics.items())]
    rows += [
        ("failures: article pages unusable (published from the feed)", summary.page_failures),
        ("failures: dead letters", summary.dead_letters),
        ("failures: not acknowledged by the broker (retried after the poll floor)", summary.publish_failures),
    ]
    return [{"what": what, "count": count} for what, count in rows]


def run_poll_flow(feeds_file: Path, settings: Settings, *, poll_all: bool, interval_minutes: float) -> RunSummary:
    """One flow run in this process; a failure re-raises the original exception (for the CLI's one-line
    error), except that the Prefect API gone under the run raises :class:`PrefectGone`."""
    try:
        state = poll(
            str(feeds_file.resolve()),
            settings_to_params(settings),
            poll_all,
            interval_minutes,
            return_state=True,
        )
        result: dict[str, Any] = state.result(raise_on_failure=True)
    except Exception as exc:
        if not api_went_away(exc):
            raise
        log.warning("a flow run's Prefect API stopped answering", exc_info=True, extra=FILE_ONLY)
        raise PrefectGone(why_api_went_away(exc), stopped_by=_stopped_by) from None
    return RunSummary(**result)


MIN_TICK = timedelta(seconds=1)
TICK = timedelta(minutes=1)  # how often due feeds are looked for; each feed keeps its own schedule


def tick(interval_minutes: float) -> timedelta:
    """How often a long-running run looks for due feeds: every minute, or every ``--interval`` if shorter,
    but not more than once a second (``--interval 1e-9`` made a flow run as fast as Prefect could)."""
    return max(MIN_TICK, min(TICK, timedelta(minutes=interval_minutes)))


def every(interval_minutes: float) -> str:
    """The tick in words, for the line a long-running run starts with."""
    seconds = tick(interval_minutes).total_seconds()
    return "every minute" if seconds == TICK.total_seconds() else f"every {seconds:g} s"


# How Prefect words its runner's giving up when its API is gone (plain RuntimeErrors)
_GONE_MESSAGES = ("Failed to reach API at", "Service exceeded error threshold")


class PrefectGone(RuntimeError):
    """The Prefect API a run depends on stopped answering, and the run stopped. ``stopped_by``: the
    signal that had stopped an in-process flow run when its API was found gone (a service manager
    signalling every process of the service, the temporary API server included), else None."""

    def __init__(self, why: str, stopped_by: int | None = None) -> None:
        super().__init__(why)
        self.stopped_by = stopped_by


# The signal that stopped this process's last flow run, as the flow's own code saw it. Prefect's engine
# swaps SIGTERM's handler during a run, and when its API is gone as well, what leaves the run is the
# API's error, not the signal: newswire's own handler never hears of it.
_stopped_by: int | None = None


@contextlib.contextmanager
def _noting_stop_signal() -> Iterator[None]:
    global _stopped_by
    try:
        yield
    except BaseException as exc:
        from prefect.exceptions import TerminationSignal

        if isinstance(exc, TerminationSignal):
            _stopped_by = exc.signal
        elif isinstance(exc, KeyboardInterrupt):
            _stopped_by = signal.SIGINT
        raise


def api_went_away(exc: BaseException) -> bool:
    """What Prefect's runner raises when its API stops answering: a connection error from the client
    (also on its way out, when it pauses the schedule), a 502, 503 or 504 answer (a server shutting down
    answers 503), "Failed to reach API", or its service loop giving up ("Service exceeded error threshold");
    anyio may wrap them in an exception group."""
    import httpx

    if isinstance(exc, BaseExceptionGroup):
        return all(api_went_away(inner) for inner in exc.exceptions)
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):  # not 500: that is the server's bug, not its absence
        return exc.response.status_code in (502, 503, 504)
    if isinstance(exc, RuntimeError) and str(exc).startswith(_GONE_MESSAGES):
        return True
    # Prefect's wrappers ("DeploymentApplyError: Error while applying deployment: ... 503") raise from it
    return isinstance(exc, RuntimeError) and exc.__cause__ is not None and api_went_away(exc.__cause__)


def why_api_went_away(exc: BaseException) -> str:
    """One short line for one of the errors :func:`api_went_away` accepts."""
    import httpx

    if isinstance(exc, BaseExceptionGroup):
        return why_api_went_away(exc.exceptions[0])
    if (
        isinstance(exc, RuntimeError)
        and exc.__cause__ is not None
        and not str(exc).startswith(_GONE_MESSAGES)
    ):
        return why_api_went_away(exc.__cause__)  # a wrapper of Prefect's: what it wraps says what happened
    if isinstance(exc, httpx.HTTPStatusError):
        return f"it answered {exc.response.status_code} {exc.response.reason_phrase}"
    return f"{type(exc).__name__}: {exc}"


def _drain_api_logs(timeout_s: float = 5.0) -> None:
    """Send the log lines Prefect's runner still has queued for its API before the streams are given
    back: with the API gone, its worker's "Error logging to API" goes to the log file, not the terminal."""
    from prefect.logging.handlers import APILogWorker

    with contextlib.suppress(Exception):
        APILogWorker.drain_all(timeout=timeout_s)


@contextlib.contextmanager
def _prefect_writes_to_log(name: str, *, stdout: bool) -> Iterator[None]:
    """What Prefect writes to ``sys.stderr`` itself (its API log worker's "--- Error logging to API ---"
    when the API is gone) and, with ``stdout``, what its runner prints, as lines of the log
    (``prefect_output.<name>``); its queued API logs are sent before the streams are given back."""
    printed = _ToLog(logging.getLogger(f"{PREFECT_OUTPUT}.{name}"))
    try:
        with (
            contextlib.redirect_stdout(printed) if stdout else contextlib.nullcontext(),
            contextlib.redirect_stderr(printed),
        ):
            try:
                yield
            finally:
                _drain_api_logs()
    finally:
        printed.flush()


class _ToLog(io.TextIOBase):
    """A text stream whose lines go to a logger: Prefect's runner prints its service errors (tracebacks
    included) with ``print``, and its API log handler writes "--- Error logging to API ---" to
    ``sys.stderr``, both of which would land on the user's terminal. (newswire's own terminal handler
    keeps the stream it was given, so its lines are not redirected.)"""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._pending = ""
        self._lock = threading.RLock()  # the runner's thread and Prefect's log worker both write
        self._inside = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if getattr(self._inside, "active", False):
            # written while logging a line: the log handler itself failed (logging reports that on
            # sys.stderr): to the real stderr, not round again
            if sys.__stderr__ is not None:
                sys.__stderr__.write(text)
            return len(text)
        with self._lock:
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
            self._emit(lines)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
            self._emit([pending])

    def _emit(self, lines: list[str]) -> None:
        self._inside.active = True
        try:
            for line in lines:
                if line.strip():
                    self._logger.warning("%s", line)
        finally:
            self._inside.active = False


def serve_poll(feeds_file: Path, settings: Settings, *, interval_minutes: float, verbosity: int = 0) -> int:
    """Serve the poll flow on a schedule until interrupted (needs a Prefect server: PREFECT_API_URL).
    Each scheduled run polls the feeds that are due by then, in a child process that logs to the state
    dir's log file and prints its cycle's line as ``poll_forever`` does (not Prefect's tracebacks).

    Returns the signal that stopped it: Prefect's runner handles both Ctrl-C and SIGTERM itself and
    returns as if nothing happened, so the caller can exit 130 or 143 like every other run. Raises
    :class:`PrefectGone` when the runner stopped because its API stopped answering (Prefect's runner gives
    up after a few failed polls, and fails again pausing the schedule on its way out). Whatever Prefect's
    runner prints or writes to ``sys.stderr`` goes to the log file: this process prints nothing else
    while serving, and the flow runs, which print the cycle lines, are child processes with streams of
    their own."""
    from prefect.runner import Runner

    child_env = {SERVED_VERBOSITY: str(verbosity)}
    # Prefect logs a flow run that fails before the flow's code runs (the API gone as it starts) from
    # handlers it set up in the child before newswire could: to the log file, as the rest
    child_env |= prefect_console_to_log_env(settings.state_dir / LOG_FILE_NAME)
    saved_env = {name: os.environ.get(name) for name in child_env}
    os.environ.update(child_env)
    terminated: list[bool] = []
    # Runner.handle_sigterm is Prefect's internal method (3.9 has it): where a release lacks it, a SIGTERM
    # reads as Ctrl-C (exit 130) instead of the run failing to start.
    handle_sigterm = getattr(Runner, "handle_sigterm", None)

    def on_sigterm(self: Runner, *args: Any, **kwargs: Any) -> None:
        terminated.append(True)
        if handle_sigterm is not None:
            handle_sigterm(self, *args, **kwargs)

    if handle_sigterm is not None:
        Runner.handle_sigterm = on_sigterm  # type: ignore[method-assign]
    try:
        # Prefect's handler exits 0 (SystemExit) when the runner had not started yet or is stopping
        # already: a SIGTERM it saw is still a SIGTERM to the caller
        with (
            _children_stderr_to(settings.state_dir / LOG_FILE_NAME),
            _prefect_writes_to_log("runner", stdout=True),
        ):
            poll.serve(
                name="newswire-poll",
                interval=tick(interval_minutes),
                parameters={
                    "feeds_file": str(feeds_file.resolve()),
                    "params": settings_to_params(settings),
                    "poll_all": False,
                    "interval_minutes": interval_minutes,
                },
                print_starting_message=False,
            )
    except SystemExit:
        if not terminated:
            raise
    except Exception as exc:
        if not api_went_away(exc):
            raise
        log.warning("Prefect's runner stopped: its API stopped answering", exc_info=True, extra=FILE_ONLY)
        if not terminated:
            raise PrefectGone(why_api_went_away(exc)) from None
        # stopped by SIGTERM (a service manager stopping newswire and the server together): the runner
        # failed only to pause its schedule on the way out
    finally:
        if handle_sigterm is not None:
            Runner.handle_sigterm = handle_sigterm  # type: ignore[method-assign]
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return signal.SIGTERM if terminated else signal.SIGINT


@contextlib.contextmanager
def _children_stderr_to(log_file: Path) -> Iterator[None]:
    """While serving, descriptor 2 appends to the log file, so that the flow-run processes Prefect's
    runner starts inherit it: Ctrl-C at a terminal signals them too, and one still starting (importing
    Prefect, unpickling its flow) printed a KeyboardInterrupt traceback before any newswire code could
    redirect it. This process's own terminal output (its log handlers on the old stderr) goes on to the
    terminal through a copy of the old descriptor. The flow runs' stdout, their cycle lines, is untouched."""
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:  # no log file to write: the terminal keeps the children's errors
        yield
        return
    terminal_fd = os.dup(2)
    terminal = open(terminal_fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)  # noqa: SIM115
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            stream = getattr(handler, "stream", None)
            if stream is not None and stream in (sys.stderr, sys.__stderr__):
                stream.flush()
                moved.append((handler, stream))
                handler.setStream(terminal)
    if sys.__stderr__ is not None:
        sys.__stderr__.flush()
    os.dup2(log_fd, 2)
    try:
        yield
    finally:
        terminal.flush()
        os.dup2(terminal_fd, 2)
        for handler, stream in moved:
            handler.setStream(stream)
        terminal.close()
        os.close(terminal_fd)
        os.close(log_fd)


def poll_forever(
    feeds_file: Path,
    settings: Settings,
    *,
    interval_minutes: float,
    report: Callable[[str], None],
    quiet: bool = False,
) -> None:
    """Without a Prefect server, Prefect cannot schedule (its ephemeral API has no scheduler): run the
    poll flow from this process every tick instead, until interrupted. A failed cycle (the broker
    away, the feed list broken by an edit) is reported and the next tick tries again; nothing
    unacknowledged was marked done.

    Each cycle's summary line is reported; with ``quiet``, only the lines of cycles that did something
    (:func:`cycle_did_something`): most ticks find no feed due, and a line a minute is 1,440 a day.
    A flow run whose API stopped answering (Prefect's temporary server stopped by something else, or
    together with this process by a service manager) ends it: :class:`PrefectGone`."""
    period = tick(interval_minutes).total_seconds()
    # report() prints the cycle lines on stdout: only Prefect's stderr is taken
    with _prefect_writes_to_log("flow_run", stdout=False):
        while True:
            started = time.monotonic()
            try:
                summary = run_poll_flow(feeds_file, settings, poll_all=False, interval_minutes=interval_minutes)
                if not quiet or cycle_did_something(summary):
                    report(summary.line())
                log.info("%s", summary.line(), extra=FILE_ONLY)
            except CYCLE_ERRORS as exc:
                report(f"cycle not completed: {exc}; trying again in {period:g} s")
                log.warning("cycle not completed: %s", exc, extra=FILE_ONLY)
            time.sleep(max(0.0, period - (time.monotonic() - started)))


def cycle_did_something(summary: RunSummary) -> bool:
    """A poll cycle worth a line: it polled a feed, published, dead-lettered or failed something. The
    store-wide health counts (feeds failing, parked, waiting) do not count: they repeat every cycle."""
    return bool(
        summary.feeds_polled
        or summary.feeds_failed
        or summary.published
        or summary.dead_letters
        or summary.page_failures
        or summary.publish_failures
        or summary.malformed_records
    )
