"""Logging: quiet terminal (warnings; -v info; -vv debug; -vvv the libraries' debug too), full detail
with tracebacks in a log file.

Lines are ``time level logger message`` with ``key=value`` pairs in the message, so they grep well.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import io
import logging
import logging.handlers
import os
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries whose info and debug lines only -vvv shows.
LIBRARY_LOGGERS = ("kafka", "httpx", "httpcore", "trafilatura", "htmldate", "courlan", "urllib3", "asyncio")
LOG_FILE_NAME = "newswire.log"  # in the state dir: every command's log, a served run's children's too
FILE_ONLY = {"file_only": True}  # ``extra=`` for records that belong in the log file, not on the terminal
# The log file of a served run's flow-run children (see prefect_console_to_log_env).
SERVED_LOG = "NEWSWIRE_SERVED_LOG"


class _OneLine(logging.Formatter):
    """Terminal formatter: never prints a traceback (those go to the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


@functools.cache
def _package_dirs(name: str) -> tuple[str, ...]:
    """Where an installed package's files are (without importing it); () if it is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return ()
    return tuple(os.path.join(location, "") for location in spec.submodule_search_locations)


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log that several processes append to: a served run and its flow-run children, or
    cron's overlapping runs on one state dir. Each process rotated on its own count: one kept writing
    into the file another had renamed to ``.1`` and, full in its turn, renamed the other's fresh log
    away. Here a process that finds the file renamed under it reopens it (as WatchedFileHandler does),
    and rotation is done by one process at a time (an flock on ``<log>.lock``), re-checked once the
    lock is held."""

    def _moved(self) -> bool:
        if self.stream is None:
            return False
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        mine = os.fstat(self.stream.fileno())
        return (on_disk.st_dev, on_disk.st_ino) != (mine.st_dev, mine.st_ino)

    def _reopen(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = self._open()

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self._moved():
            self._reopen()
        return bool(super().shouldRollover(record))

    def doRollover(self) -> None:
        try:
            lock = open(self.baseFilename + ".lock", "a")  # noqa: SIM115 -- held across the rollover
        except OSError:
            super().doRollover()
            return
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._moved():  # another process rotated while this one waited for the lock
                self._reopen()
                return
            super().doRollover()


def setup_logging(verbosity: int, log_file: Path | None) -> Path | None:
    """Returns the log file when it could be opened (None: terminal only).

    Python warnings (a library's ``SAWarning`` or ``DeprecationWarning``, with its source line) go to the
    log; on the terminal only with ``-v``."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if log_file is not None else level)
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(level)
    terminal.setFormatter(_OneLine(_FORMAT, "%H:%M:%S"))
    terminal.addFilter(lambda record: not getattr(record, "file_only", False))
    logging.captureWarnings(True)
    if verbosity < 1:
        terminal.addFilter(lambda record: record.name != "py.warnings")
    if verbosity < 2:
        # kafka-python logs every reconnect attempt as an error, and the extraction libraries warn about
        # pages newswire handles itself ("discarding data: None"); newswire reports the outcome
        # itself. They stay in the log file.
        # Prefect's queue services log under their class names ("EventsWorker: Still processing items"
        # at exit when its API is gone): known by the file they come from.
        prefect_code = _package_dirs("prefect")
        terminal.addFilter(
            lambda record: not record.name.startswith(
                ("kafka", "prefect", "uvicorn", "trafilatura", "htmldate", "courlan")
            )
            and not record.pathname.startswith(prefect_code)
        )
    if verbosity < 3:
        # -v and -vv are newswire's own detail: other libraries' info and debug lines (Prefect's websockets
        # client, graphviz, aiosqlite...) reach the terminal only with -vvv; their warnings still do.
        terminal.addFilter(
            lambda record: record.levelno >= logging.WARNING
            or record.name == "newswire"
            or record.name.startswith("newswire.")
        )
    root.addHandler(terminal)
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = SharedRotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=3)
        except OSError:
            log_file = None
        else:
            handler.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
            handler.setFormatter(logging.Formatter(_FORMAT))
            root.addHandler(handler)
    # Chatty libraries stay at warning unless -vv.
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    return log_file


def quiet_prefect(home: Path) -> None:
    """Keep Prefect's start-up/shutdown noise and tracebacks off the terminal and out of ~/.prefect.

    Must run before ``prefect`` is imported; explicit user settings win.
    """
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The client's switch: without it Prefect prints its telemetry notice on a terminal at first import
    # in a fresh PREFECT_HOME (Prefect 3 has no PREFECT_* setting for the client side).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
    # A first start in a fresh PREFECT_HOME migrates its database; on a busy 2-core machine that can
    # take longer than Prefect's default 20 s, and then the run would fail for nothing.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def route_prefect_logs_to_file() -> None:
    """After Prefect configured its own handlers: send them to our root (file) instead of the console."""
    for name in ("prefect", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "docket"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("prefect.", "uvicorn.")):
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    logger.removeHandler(handler)
            logger.propagate = True


class _AppendToServedLog(io.TextIOBase):
    """Prefect's console stream in the flow runs that ``run`` serves: child processes of Prefect's
    runner that share the user's terminal. Prefect sets up its log handlers when it is imported there,
    before any newswire code runs, so a run that fails to start (its API gone mid-start, say) would print
    Prefect's error and traceback on the terminal. Appends to the file named by ``NEWSWIRE_SERVED_LOG``
    instead (to the real stderr if that cannot be written: a traceback is not dropped)."""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        path = os.environ.get(SERVED_LOG)
        if path:
            try:
                with open(path, "a", encoding="utf-8") as log:
                    log.write(text)
                return len(text)
            except OSError:
                pass
        if sys.__stderr__ is not None:
            sys.__stderr__.write(text)
        return len(text)


SERVED_CHILD_STREAM = _AppendToServedLog()


def prefect_console_to_log_env(log_file: Path) -> dict[str, str]:
    """Environment for Prefect's flow-run child processes: its console and debug handlers write to
    ``log_file`` (Prefect reads ``PREFECT_LOGGING_HANDLERS_<NAME>_<KEY>`` over its logging.yml)."""
    stream = f"ext://{__name__}.SERVED_CHILD_STREAM"
    return {
        SERVED_LOG: str(log_file),
        "PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM": stream,
        "PREFECT_LOGGING_HANDLERS_DEBUG_STREAM": stream,
        # Rich colours a stream that is no terminal too when FORCE_COLOR is set (CI runners set it)
        "PREFECT_LOGGING_COLORS": "false",
    }
