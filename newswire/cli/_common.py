"""What every command shares: the Typer app and its groups, exit statuses, the user-error exceptions, the
options, settings from options, and the per-command session (verbosity, log file, signal)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from newswire import __version__
from newswire.config import Settings, default_state_dir, parse_kafka_options, schedule_from_env
from newswire.logs import FILE_ONLY, LOG_FILE_NAME, setup_logging


def _flag_help_type(display: Any) -> Any:
    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else display(self, ctx)

    return display_type_rich


# typer 0.29 labels every option's type in the help, flags included ("--all <bool>", "--help <bool>"),
# which reads as if the flag took a value: flags show no type.
if hasattr(typer.core.TyperOption, "display_type_rich"):
    typer.core.TyperOption.display_type_rich = _flag_help_type(  # type: ignore[method-assign]
        typer.core.TyperOption.display_type_rich
    )

app = typer.Typer(
    name="newswire",
    help="Poll news feeds, extract articles, tag topics, publish to Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feeds_app = typer.Typer(help="The feed list and each feed's health.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
db_app = typer.Typer(help="The state store (SQLite file or PostgreSQL).", no_args_is_help=True)
app.add_typer(db_app, name="db")
metrics_app = typer.Typer(help="Prometheus metrics.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")
taxonomy_app = typer.Typer(help="Check, copy or evaluate a topic taxonomy.", no_args_is_help=True)
app.add_typer(taxonomy_app, name="taxonomy")

EXIT_USER = 2  # bad input or options
EXIT_UNAVAILABLE = 3  # broker/state unreachable, run not completed
EXIT_INTERNAL = 70
MAX_INTERVAL_MINUTES = 10 * 365 * 24 * 60  # ten years: beyond, a date overflows


class UserError(Exception):
    """Raised inside commands for a one-line error and exit status 2."""


class Unavailable(Exception):
    """Raised inside commands for a one-line error and exit status 3 (a service newswire needs cannot be
    reached: trying again later may work)."""

@dataclass
class Session:
    """This process's command: set by the global options, the command's start and the SIGTERM handler."""

    verbose: int = 0  # -v given before the command (`newswire -v replay ...`) counts as well as after it
    log_file: Path | None = None  # the log this command writes (None: not started yet, or it could not be opened)
    terminated: bool = False  # SIGTERM arrived


session = Session()


# -- shared options -----------------------------------------------------------------------------------

BootstrapOpt = Annotated[
    str, typer.Option("--bootstrap-servers", envvar="NEWSWIRE_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers.")
]
PrefixOpt = Annotated[
    str, typer.Option("--topic-prefix", envvar="NEWSWIRE_TOPIC_PREFIX", help="Prefix of every topic name.")
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="NEWSWIRE_STATE_DIR",
        help="Directory of the embedded SQLite state (default: the user's data dir).",
        show_default=False,
    ),
]
StateUrlOpt = Annotated[
    str | None,
    typer.Option("--state-url", envvar="NEWSWIRE_STATE_URL", help="State store URL; wins over --state-dir."),
]
ArchiveDirOpt = Annotated[
    Path | None,
    typer.Option("--archive-dir", envvar="NEWSWIRE_ARCHIVE_DIR", help="WARC archive dir (default <state-dir>/archive)."),
]
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        envvar="NEWSWIRE_ALLOW_HOSTS",
        metavar="HOST",
        help="Host allowed to resolve to a private/loopback address (repeatable).",
    ),
]
TaxonomyOpt = Annotated[
    Path | None,
    typer.Option("--taxonomy", envvar="NEWSWIRE_TAXONOMY", help="Taxonomy YAML file or directory (default: built in)."),
]
KafkaOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kafka-option",
        envvar="NEWSWIRE_KAFKA_OPTIONS",
        metavar="KEY=VALUE",
        help="KEY=VALUE passed to kafka-python (security_protocol, sasl_*, ssl_*...); repeatable or ';'-separated.",
    ),
]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        metavar="",  # a counting flag takes no value: no <int> in the help
        show_default=False,
        help="More log output; repeat the flag: -v info, -vv debug, -vvv the libraries' too.",
    ),
]
PartitionsOpt = Annotated[
    int,
    typer.Option("--partitions", envvar="NEWSWIRE_PARTITIONS", help="Partitions of each topic newswire creates."),
]
ReplicationOpt = Annotated[
    int,
    typer.Option(
        "--replication-factor", envvar="NEWSWIRE_REPLICATION_FACTOR", help="Replication factor of topics newswire creates."
    ),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        envvar="NEWSWIRE_METRICS_PORT",
        min=0,
        max=65535,
        help="Serve Prometheus metrics on this port (/metrics).",
    ),
]
MetricsAddrOpt = Annotated[
    str, typer.Option("--metrics-addr", envvar="NEWSWIRE_METRICS_ADDR", help="Address the metrics endpoint binds.")
]


def split_hosts(values: list[str] | None) -> frozenset[str]:
    hosts: set[str] = set()
    for value in values or []:
        hosts.update(h.strip().lower() for h in value.replace(",", " ").split() if h.strip())
    return frozenset(hosts)


def make_settings(**values: Any) -> Settings:
    state_dir = values.pop("state_dir") or default_state_dir()
    kafka = parse_kafka_options(values.pop("kafka_options") or [])
    hosts = split_hosts(values.pop("allow_hosts"))
    values = {**schedule_from_env(), **values}  # fetch limits and schedule knobs: NEWSWIRE_* (docs/fetching.md)
    return Settings(state_dir=state_dir, kafka_options=kafka, allow_hosts=hosts, **values)


def state_base(state_dir: Path | None) -> Path:
    """--state-dir, else $NEWSWIRE_STATE_DIR (for commands without the option), else the user's data dir."""
    if state_dir is not None:
        return state_dir
    from_env = os.environ.get("NEWSWIRE_STATE_DIR")
    return Path(from_env) if from_env else default_state_dir()


def start(verbose: int, state_dir: Path | None, *, reads_state: bool = False) -> Path:
    """Logging for a command (the log file is ``<state dir>/newswire.log``); returns the state dir.

    A command that only reads the state (``reads_state``) does not create a state dir that is not there:
    a mistyped --state-dir gets its one-line error and leaves no directory with a log file behind."""
    base = state_base(state_dir)
    log_file = None if reads_state and not base.is_dir() else base / LOG_FILE_NAME
    session.log_file = setup_logging(verbose + session.verbose, log_file)
    if log_file is not None and session.log_file is None and base.is_dir():
        # the state dir is there but its log is not writable: said once, not found out after a failure
        # (a state dir that cannot be made gets its own error from the state store)
        sys.stderr.write(f"newswire: warning: cannot write the log file {log_file}; logging to the terminal only\n")
    return base


def finish(summary_line: str, *, completed: bool) -> None:
    """A run's or replay's end: its summary line on stdout and in the log (what a scheduled run did),
    then exit 3 when something was not published."""
    typer.echo(summary_line)
    logging.getLogger("newswire").info("%s", summary_line, extra=FILE_ONLY)
    if not completed:
        raise typer.Exit(EXIT_UNAVAILABLE)


def multiproc_dir(*, writes: bool) -> Path | None:
    """$PROMETHEUS_MULTIPROC_DIR when set. prometheus-client writes there from the first sample on, so a
    name that is no directory is a one-line error before any work starts, not a FileNotFoundError later."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return None
    value = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if not value:
        raise UserError("PROMETHEUS_MULTIPROC_DIR is set but empty: unset it, or name an existing directory")
    path = Path(value)
    if not path.exists():
        raise UserError(f"PROMETHEUS_MULTIPROC_DIR={value}: the directory does not exist (create it, empty, first)")
    if not path.is_dir():
        raise UserError(f"PROMETHEUS_MULTIPROC_DIR={value} is not a directory")
    if writes and not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"PROMETHEUS_MULTIPROC_DIR={value}: the directory is not writable")
    return path


def url_host(addr: str) -> str:
    """An address as the host part of a URL (an IPv6 address in brackets)."""
    return f"[{addr}]" if ":" in addr else addr


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"newswire {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    verbose: VerboseOpt = 0,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Poll news feeds, extract articles, tag topics, publish to Kafka."""
    session.verbose = verbose

