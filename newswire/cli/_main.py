"""The entry point: runs a command and turns what it raises into one line and an exit status."""

from __future__ import annotations

import contextlib
import difflib
import logging
import signal
import sys
from types import FrameType
from typing import NoReturn

import typer

from newswire import stopping
from newswire.cli._common import (
    EXIT_INTERNAL,
    EXIT_UNAVAILABLE,
    EXIT_USER,
    Unavailable,
    UserError,
    app,
    session,
    start,
)
from newswire.config import ConfigError
from newswire.logs import FILE_ONLY

log = logging.getLogger("newswire")

def _fail(message: str, code: int) -> NoReturn:
    if session.log_file is not None:  # the log tells why a scheduled run ended (none set up: no record)
        log.error("exit %d: %s", code, message, extra=FILE_ONLY)
    sys.stderr.write(f"newswire: error: {message}\n")
    raise SystemExit(code)


# Errors a user can cause, by module: looked up only in modules already imported (one that was never
# imported cannot have raised), so `main` imports nothing heavy before the command starts: `replay`
# starts its forkserver first, and sqlalchemy and kafka-python (0.6 s) load while the forkserver preloads.
_USER_ERRORS = (
    ("newswire.connectors.feedlist", "FeedListError"),
    ("newswire.processors.tagging", "TaxonomyError"),
    ("newswire.processors.embeddings", "EmbeddingError"),
    ("newswire.labelled", "LabelsError"),
    ("newswire.connectors.kafka", "KafkaConfigError"),
    ("newswire.connectors.state", "StateConfigError"),  # before StateError, of which it is one
    ("newswire.connectors.warc_writer", "ArchiveDirError"),
)
_UNAVAILABLE_ERRORS = (
    ("newswire.connectors.kafka", "BrokerUnavailable"),
    ("newswire.connectors.state", "StateError"),
)


def _raised_one_of(exc: BaseException, names: tuple[tuple[str, str], ...]) -> bool:
    for module_name, class_name in names:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False



def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a service manager stopping newswire) stops it as Ctrl-C does: what the broker
    acknowledged is marked done, the rest is retried by a later run. Exit status 143, as for SIGTERM."""
    session.terminated = True
    # Inside an asyncio run, its main task is cancelled as asyncio's own Ctrl-C handler would (a
    # KeyboardInterrupt raised here would land in whichever task runs, and asyncio prints it on exit);
    # that handler is not there when SIGINT was ignored at the start (a job a script put in the background).
    if stopping.request_stop():
        return
    # Else whatever handles Ctrl-C now (Prefect's runner in a served run).
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint) and on_sigint is not signal.default_int_handler:
        on_sigint(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


def _unknown_option(exc: Exception) -> str | None:
    """click's line for an unknown option, with its suggestions compared without the dashes: with them,
    "--" alone made click offer --verbose for any option at all ("--bogus")."""
    # typer carries its own copy of click: its exception is recognised by name, not by class
    name = getattr(exc, "option_name", None)
    if type(exc).__name__ != "NoSuchOption" or not isinstance(name, str):
        return None
    offered: list[str] = list(getattr(exc, "possibilities", None) or ())
    near = [o for o in offered if difflib.get_close_matches(name.lstrip("-"), [o.lstrip("-")], cutoff=0.6)]
    if near:
        return f"No such option: {name}; did you mean {' or '.join(near)}?"
    names: list[str] = []  # the subcommands, without the root's name (click writes "python -m newswire" there)
    ctx = getattr(exc, "ctx", None)
    while ctx is not None and getattr(ctx, "parent", None) is not None:
        names.insert(0, str(ctx.info_name))
        ctx = ctx.parent
    command = " ".join(["newswire", *names])
    return f"No such option: {name} ('{command} --help' lists the options)"


def main() -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    # A closed terminal or a dropped ssh session (SIGHUP) killed the run outright, nothing marked done
    # and its children left behind; it stops as SIGTERM does (not under nohup, which ignores it).
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _on_sigterm)
    try:
        code = app(standalone_mode=False)  # Ctrl-C inside a command: typer returns 130
        if session.terminated:
            raise SystemExit(143)
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    except KeyboardInterrupt:
        raise SystemExit(143 if session.terminated else 130) from None
    except (UserError, ConfigError) as exc:
        _fail(str(exc), EXIT_USER)
    except Unavailable as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    except Exception as exc:
        if _raised_one_of(exc, _USER_ERRORS):
            _fail(str(exc), EXIT_USER)
        if _raised_one_of(exc, _UNAVAILABLE_ERRORS):
            _fail(str(exc), EXIT_UNAVAILABLE)
        usage = getattr(exc, "format_message", None)
        if usage is not None and isinstance(getattr(exc, "exit_code", None), int):  # typer/click usage error
            message = _unknown_option(exc) or str(usage()).strip()
            if not message:  # help was shown (no arguments given)
                raise SystemExit(EXIT_USER) from None
            _fail(message, EXIT_USER)
        if type(exc).__name__ == "Abort":
            _fail("aborted", 130)
        if session.log_file is None:  # failed before the command set up its log: the traceback goes to the default one
            with contextlib.suppress(Exception):  # the state dir itself may be what is broken
                start(0, None)
        log.exception("internal error", extra=FILE_ONLY)
        where = f"traceback in {session.log_file}" if session.log_file is not None else "no log file could be written"
        _fail(f"internal error: {type(exc).__name__}: {exc} ({where})", EXIT_INTERNAL)

