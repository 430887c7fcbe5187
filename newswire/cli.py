"""The ``newswire`` command. Every option also reads an environment variable ``NEWSWIRE_<NAME>``.

Errors a user can cause end in one line on stderr and a non-zero exit; internal errors print one line
and keep their traceback in the log file (``<state dir>/newswire.log``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer

from newswire import __version__
from newswire.config import ConfigError, Settings, default_state_dir, parse_kafka_options, schedule_from_env
from newswire.logs import FILE_ONLY, setup_logging

log = logging.getLogger("newswire")


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

EXIT_USER = 2  # bad input or options
EXIT_UNAVAILABLE = 3  # broker/state unreachable, run not completed
EXIT_INTERNAL = 70
MAX_INTERVAL_MINUTES = 10 * 365 * 24 * 60  # ten years: beyond, a date overflows


class UserError(Exception):
    """Raised inside commands for a one-line error and exit status 2."""


class Unavailable(Exception):
    """Raised inside commands for a one-line error and exit status 3 (a service newswire needs cannot be
    reached: trying again later may work)."""


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


def _split_hosts(values: list[str] | None) -> frozenset[str]:
    hosts: set[str] = set()
    for value in values or []:
        hosts.update(h.strip().lower() for h in value.replace(",", " ").split() if h.strip())
    return frozenset(hosts)


def _settings(**values: Any) -> Settings:
    state_dir = values.pop("state_dir") or default_state_dir()
    kafka = parse_kafka_options(values.pop("kafka_options") or [])
    hosts = _split_hosts(values.pop("allow_hosts"))
    values = {**schedule_from_env(), **values}  # fetch limits and schedule knobs: NEWSWIRE_* (docs/fetching.md)
    return Settings(state_dir=state_dir, kafka_options=kafka, allow_hosts=hosts, **values)


# -v given before the command (`newswire -v replay ...`) counts as well as after it
_global_verbose = 0
# the log file this command writes (None: not started yet, or the file could not be opened)
_log_file: Path | None = None


def _state_base(state_dir: Path | None) -> Path:
    """--state-dir, else $NEWSWIRE_STATE_DIR (for commands without the option), else the user's data dir."""
    if state_dir is not None:
        return state_dir
    from_env = os.environ.get("NEWSWIRE_STATE_DIR")
    return Path(from_env) if from_env else default_state_dir()


def _start(verbose: int, state_dir: Path | None, *, reads_state: bool = False) -> Path:
    """Logging for a command (the log file is ``<state dir>/newswire.log``); returns the state dir.

    A command that only reads the state (``reads_state``) does not create a state dir that is not there:
    a mistyped --state-dir gets its one-line error and leaves no directory with a log file behind."""
    global _log_file
    base = _state_base(state_dir)
    log_file = None if reads_state and not base.is_dir() else base / "newswire.log"
    _log_file = setup_logging(verbose + _global_verbose, log_file)
    return base


def _multiproc_dir(*, writes: bool) -> Path | None:
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


def _check_prefect_api(url: str, *, once: bool) -> None:
    """A Prefect API newswire is told to use must answer before any work starts: exit status 3 when it
    does not answer (it may come up), 2 when the URL cannot be one (no http(s)://, or 404 at /health)."""
    import httpx

    try:
        answer = httpx.get(url.rstrip("/") + "/health", timeout=10.0)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        # a URL without http:// or https:// cannot become reachable by waiting: the user's mistake
        raise UserError(f"PREFECT_API_URL={url}: not a valid http(s) URL ({exc})") from None
    except httpx.TransportError as exc:
        raise Unavailable(_prefect_unreachable(url, str(exc) or type(exc).__name__, once=once)) from None
    if answer.status_code == 404:
        raise UserError(
            f"PREFECT_API_URL={url}: {answer.url} answered 404, so this is no Prefect API "
            "(it usually ends in /api, e.g. http://127.0.0.1:4200/api)"
        )


def _prefect_unreachable(url: str, why: str, *, once: bool) -> str:
    instead = "pass --no-prefect or unset PREFECT_API_URL" if once else "unset PREFECT_API_URL"
    return f"Prefect API at {url} is unreachable ({why}); start the server, or {instead} to run without it"


def _url_host(addr: str) -> str:
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
    global _global_verbose
    _global_verbose = verbose


# -- run ----------------------------------------------------------------------------------------------


@app.command()
def run(
    feeds: Annotated[
        Path, typer.Option("--feeds", envvar="NEWSWIRE_FEEDS", help="Feed list: OPML or one URL per line.")
    ],
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit (default: keep polling).")] = False,
    all_feeds: Annotated[
        bool, typer.Option("--all", help="With --once: poll every feed, not only those due.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", envvar="NEWSWIRE_INTERVAL", help="Minutes between polls of a feed until its own publishing rate is known (adaptive after).")
    ] = 15.0,
    prefect: Annotated[
        bool | None,
        typer.Option(
            "--prefect/--no-prefect",
            help="Run --once as a Prefect flow run (default: only when PREFECT_API_URL names a server).",
            show_default=False,
        ),
    ] = None,
    bootstrap_servers: BootstrapOpt = "127.0.0.1:9092",
    topic_prefix: PrefixOpt = "news",
    state_dir: StateDirOpt = None,
    state_url: StateUrlOpt = None,
    archive_dir: ArchiveDirOpt = None,
    allow_host: AllowHostOpt = None,
    taxonomy: TaxonomyOpt = None,
    kafka_option: KafkaOpt = None,
    no_archive: Annotated[bool, typer.Option("--no-archive", help="Do not write WARC files.")] = False,
    partitions: PartitionsOpt = 1,
    replication_factor: ReplicationOpt = 1,
    metrics_port: MetricsPortOpt = None,
    metrics_addr: MetricsAddrOpt = "0.0.0.0",
    lease_batch: Annotated[
        int,
        typer.Option(
            "--lease-batch",
            envvar="NEWSWIRE_LEASE_BATCH",
            help="Lease this many due feeds at a time (0: all), so several workers share one state store.",
        ),
    ] = 0,
    lease_seconds: Annotated[
        float,
        typer.Option(
            "--lease-seconds", envvar="NEWSWIRE_LEASE_SECONDS", help="How long a worker holds its feeds and articles."
        ),
    ] = 600.0,
    verbose: VerboseOpt = 0,
) -> None:
    """Poll the feeds of the --feeds list, publish every new article, commit."""
    _start(verbose, state_dir)
    _multiproc_dir(writes=True)
    if not 0 < interval <= MAX_INTERVAL_MINUTES:  # also NaN and inf
        raise UserError(f"--interval must be a positive number of minutes, at most {MAX_INTERVAL_MINUTES:,}")
    if all_feeds and not once:  # it was ignored: every cycle of a long-running run polls the feeds due
        raise UserError("--all goes with --once (a run that keeps polling polls each feed when it is due)")
    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        state_dir=state_dir,
        state_url=state_url,
        archive_dir=archive_dir,
        allow_hosts=allow_host,
        taxonomy=taxonomy,
        kafka_options=kafka_option,
        archive=not no_archive,
        partitions=partitions,
        replication_factor=replication_factor,
        lease_batch=lease_batch,
        lease_seconds=lease_seconds,
    )
    from newswire.connectors.feedlist import read_feed_list

    feed_list = read_feed_list(feeds)
    from newswire.logs import quiet_prefect

    quiet_prefect(settings.state_dir / "prefect")
    api_url = os.environ.get("PREFECT_API_URL")
    use_prefect = prefect if prefect is not None else bool(api_url)
    if api_url and (use_prefect or not once):
        _check_prefect_api(api_url, once=once)
    if metrics_port is not None:
        _serve_metrics(metrics_port, metrics_addr, settings.state_dir, in_children=not once or bool(prefect))

    if not once:
        from newswire.flows.poll import poll_forever, serve_poll

        if api_url:
            typer.echo(
                f"newswire: serving the poll flow for {len(feed_list)} feeds on {os.environ['PREFECT_API_URL']}: "
                "a run every minute polls the feeds due (Ctrl-C stops)",
                err=True,
            )
            stopped_by = serve_poll(feeds, settings, interval_minutes=interval, verbosity=verbose + _global_verbose)
            # Prefect's runner took the signal (or newswire's SIGTERM handler did, before the runner's was set)
            raise SystemExit(143 if stopped_by == signal.SIGTERM or _terminated else 130)
        else:
            typer.echo(
                f"newswire: polling {len(feed_list)} feeds, a Prefect flow run every minute for the feeds due "
                "(no Prefect server configured: set PREFECT_API_URL to serve it to one; Ctrl-C stops)",
                err=True,
            )
            # a cycle that did nothing (no feed due) prints nothing unless -v: one line a minute adds up
            poll_forever(
                feeds, settings, interval_minutes=interval, report=typer.echo, quiet=verbose + _global_verbose < 1
            )
        return

    if use_prefect:
        from newswire.flows.poll import run_poll_flow

        try:
            summary = run_poll_flow(feeds, settings, poll_all=all_feeds, interval_minutes=interval)
        except RuntimeError as exc:
            if api_url and str(exc).startswith("Failed to reach API at"):  # Prefect's words: it went away
                raise Unavailable(_prefect_unreachable(api_url, "no answer", once=True)) from None
            raise
    else:
        from newswire.live import run_leased

        with _progress("articles") as on_progress:
            summary = run_leased(
                settings, feed_list, poll_all=all_feeds, interval=timedelta(minutes=interval), on_progress=on_progress
            )
    typer.echo(summary.line())
    if not summary.completed:
        raise typer.Exit(EXIT_UNAVAILABLE)


def _serve_metrics(port: int, addr: str, state_dir: Path, *, in_children: bool) -> None:
    """The metrics endpoint for this run. Flow runs that Prefect starts in child processes write their
    samples to a shared directory (prometheus-client's multiprocess mode), which the endpoint sums.
    prometheus-client reads $PROMETHEUS_MULTIPROC_DIR once, when it is imported: it is set first, or this
    process's own samples (a run without a Prefect server polls in this process) never reach the files."""
    if in_children and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import atexit
        import shutil

        shared = state_dir / "metrics" / str(os.getpid())
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
        atexit.register(shutil.rmtree, shared, ignore_errors=True)  # this run's samples only: gone with it
    from newswire.metrics import MetricsError, serve_metrics

    try:
        serve_metrics(port, addr)
    except MetricsError as exc:
        raise UserError(str(exc)) from None


db_app = typer.Typer(help="The state store (SQLite file or PostgreSQL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(state_dir: StateDirOpt = None, state_url: StateUrlOpt = None, verbose: VerboseOpt = 0) -> None:
    """Create the state store or bring its schema to this version (every run does it too)."""
    base = _start(verbose, state_dir)
    from newswire.connectors.state import StateStore

    with StateStore.open(base, state_url) as store:
        applied, version = store.upgrade()
        where = store.describe()
    typer.echo(f"state store {where}: schema version {version} ({applied} migrations applied)")


metrics_app = typer.Typer(help="Prometheus metrics.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")
taxonomy_app = typer.Typer(help="Check, copy or evaluate a topic taxonomy.", no_args_is_help=True)
app.add_typer(taxonomy_app, name="taxonomy")


@metrics_app.command("serve")
def metrics_serve(
    port: Annotated[int, typer.Option("--port", envvar="NEWSWIRE_METRICS_PORT", help="Port of /metrics.")] = 9464,
    addr: MetricsAddrOpt = "0.0.0.0",
    verbose: VerboseOpt = 0,
) -> None:
    """Serve the metrics that processes (a Prefect worker's flow runs) write to $PROMETHEUS_MULTIPROC_DIR."""
    _start(verbose, None)
    import threading

    from newswire.metrics import MetricsError, serve_metrics

    shared = _multiproc_dir(writes=False)
    if shared is None:
        raise UserError("set PROMETHEUS_MULTIPROC_DIR to the directory the workers' flow runs write metrics to")
    try:
        server = serve_metrics(port, addr)
    except MetricsError as exc:
        raise UserError(str(exc)) from None
    typer.echo(
        f"newswire: metrics of {shared} on http://{_url_host(addr)}:{server.port}/metrics (Ctrl-C stops)", err=True
    )
    threading.Event().wait()


class _progress:
    """A rich progress bar on a terminal; nothing when stderr is not one."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn(f"[bold]{self.what}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.what, total=None)

        def update(done: int, total: int) -> None:
            self._bar.update(self._task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- replay -------------------------------------------------------------------------------------------


@app.command()
def replay(
    paths: Annotated[
        list[Path], typer.Argument(help="WARC files (.warc, .warc.gz) or directories of them.", show_default=False)
    ],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only feed documents (and feedless pages) dated at or after T (ISO 8601, UTC if no offset)."),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only those dated before T.")] = None,
    feed: Annotated[
        list[str] | None, typer.Option("--feed", metavar="URL", help="Only this feed's documents and the pages they link (repeatable).")
    ] = None,
    skip_published: Annotated[
        bool,
        typer.Option(
            "--skip-published", help="Skip articles the live state (--state-url or --state-dir) already published."
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", envvar="NEWSWIRE_WORKERS", help="Extraction processes (0: one per core).")
    ] = 0,
    bootstrap_servers: BootstrapOpt = "127.0.0.1:9092",
    topic_prefix: PrefixOpt = "news",
    state_dir: StateDirOpt = None,
    state_url: StateUrlOpt = None,
    taxonomy: TaxonomyOpt = None,
    kafka_option: KafkaOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Replay WARC archives through the pipeline (no network): feeds, their entries, archived pages."""
    _start(verbose, state_dir)
    _multiproc_dir(writes=True)
    from newswire.pool import start_forkserver

    start_forkserver()  # its preload overlaps the imports below
    from newswire.connectors.warc_reader import WarcReadError
    from newswire.replay import ReplayError, parse_time
    from newswire.replay import replay as run_replay

    if workers < 0:
        raise UserError("--workers must be 0 (one per core) or more")
    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        state_dir=state_dir,
        state_url=state_url,
        allow_hosts=None,
        taxonomy=taxonomy,
        kafka_options=kafka_option,
        archive=False,
        extract_workers=workers,
    )
    try:
        with _ReplayProgress() as on_progress:
            summary = run_replay(
                settings,
                paths,
                since=parse_time(since) if since else None,
                until=parse_time(until) if until else None,
                feeds=feed or [],
                skip_published=skip_published,
                on_progress=on_progress,
            )
    except (ReplayError, WarcReadError) as exc:
        raise UserError(str(exc)) from None
    typer.echo(summary.line(replay=True))
    if not summary.completed:
        raise typer.Exit(EXIT_UNAVAILABLE)


class _ReplayProgress:
    """Records read, then articles done, each with its rate; nothing when stderr is not a terminal."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.completed:,.0f}"),
            TextColumn("({task.fields[rate]})"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()

        def update(stage: str, done: int, total: int | None) -> None:
            task = self._tasks.get(stage)
            if task is None:
                task = self._tasks[stage] = self._bar.add_task(stage, total=total, rate="-")
            self._bar.update(task, completed=done, total=total)
            speed = next((t.speed for t in self._bar.tasks if t.id == task), None)
            self._bar.update(task, rate=f"{speed:,.0f} {stage}/s" if speed else "-")

        return update

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# -- tail ---------------------------------------------------------------------------------------------


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="A topic slug (china), 'articles', 'deadletter', or a full topic name.")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="Start at the oldest message.")] = False,
    group: Annotated[str | None, typer.Option("--group", help="Join this consumer group.")] = None,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Stop after N messages.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.0, help="Stop after N seconds without a message.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each message as one JSON line.")] = False,
    bootstrap_servers: BootstrapOpt = "127.0.0.1:9092",
    topic_prefix: PrefixOpt = "news",
    kafka_option: KafkaOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Print messages from a topic as they arrive."""
    _start(verbose, None)
    from newswire.connectors.kafka import KafkaSettings, consume

    name = topic_name(topic_prefix, topic)
    from newswire.config import topic_chars_ok

    if not topic.strip(".") or len(name) > 249 or not topic_chars_ok(name):
        # such a topic cannot exist: waiting for it would wait forever
        raise UserError(f"{name!r} cannot be a Kafka topic: use letters, digits, '.', '_' or '-' (up to 249)")
    settings = KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        client_config=parse_kafka_options(kafka_option or []),
    )
    for received in consume(
        settings, [name], group=group, from_beginning=from_beginning, timeout_s=timeout, max_messages=max_messages
    ):
        if as_json:
            sys.stdout.write(received.value.decode("utf-8", "replace") + "\n")
        else:
            sys.stdout.write(_describe(received.value) + "\n")
        sys.stdout.flush()


def topic_name(prefix: str, topic: str) -> str:
    if topic in {"articles", "deadletter"}:
        return f"{prefix}.{topic}"
    if "." in topic:
        return topic
    return f"{prefix}.topic.{topic}"


def _describe(value: bytes) -> str:
    try:
        data = json.loads(value)
    except ValueError:
        return value[:200].decode("utf-8", "replace")
    if data.get("schema", "").startswith("newswire.deadletter"):
        return f"DEAD {data.get('stage')}: {data.get('reason')} {data.get('url')}"
    topics = ",".join(t["slug"] for t in data.get("topics", [])) or "-"
    return f"{data.get('id', '')[:12]}  [{topics}]  ({data.get('text_source')})  {data.get('title', '')}"


# -- feeds --------------------------------------------------------------------------------------------


@feeds_app.command("status")
def feeds_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    feeds: Annotated[
        Path | None,
        typer.Option(
            "--feeds",
            envvar="NEWSWIRE_FEEDS",
            help="Only the feeds of this list (those never polled shown too); default: every feed in the state.",
            show_default=False,
        ),
    ] = None,
    failing: Annotated[bool, typer.Option("--failing", help="Only feeds that are failing or parked.")] = False,
    state_dir: StateDirOpt = None,
    state_url: StateUrlOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Every feed's health: last poll, last success, HTTP status, entries seen, consecutive failures,
    next poll (and why then), parked or waiting for a Retry-After, last error reason."""
    base = _start(verbose, state_dir, reads_state=True)
    from datetime import UTC, datetime

    from newswire.connectors.state import StateStore
    from newswire.live import schedule_settings
    from newswire.processors.schedule import ScheduleState, entries_per_day
    from newswire.records import FeedState

    if not state_url and not (base / "state.db").exists():
        raise UserError(f"no state store in {base} (run `newswire run` first, or pass --state-dir)")
    with StateStore.open(base, state_url) as store:
        if feeds is None:
            states = store.feeds()
        else:
            from newswire.connectors.feedlist import read_feed_list

            listed = read_feed_list(feeds)
            known = store.feeds_for(f.url for f in listed)
            states = [known.get(f.url) or FeedState(url=f.url, title=f.title) for f in listed]
    now = datetime.now(UTC)
    schedule = schedule_settings(Settings(**schedule_from_env()))
    rows: list[dict[str, Any]] = []
    for f in states:
        rate = entries_per_day(
            ScheduleState(rate_count=f.rate_count, rate_since=f.rate_since, last_success_at=f.last_success_at),
            now,
            schedule,
        )
        state = (
            "new" if f.last_poll_at is None
            else "parked" if f.parked
            else "waiting" if f.waiting(now)
            else "failing" if f.consecutive_failures
            else "ok"
        )
        rows.append(
            {
                "url": f.url,
                "title": f.title,
                "state": state,
                "last_poll": _iso(f.last_poll_at),
                "last_success": _iso(f.last_success_at),
                "http_status": f.last_status,
                "entries_seen": f.entries_seen,
                "consecutive_failures": f.consecutive_failures,
                "failing_since": _iso(f.failing_since),
                "parked": f.parked,
                "parked_since": _iso(f.parked_since),
                "retry_after_until": _iso(f.retry_after_until),
                "next_poll": _iso(f.next_poll_at),
                "next_poll_reason": f.schedule_reason,
                "entries_per_day": round(rate, 3) if rate is not None else None,
                "last_error": f.last_error,
                "page_failures": f.page_failures,
                "last_page_error": f.last_page_error,
                "discovered_url": f.discovered_url,
            }
        )
    if failing:
        rows = [r for r in rows if r["state"] in ("failing", "parked", "waiting")]
    counts = {k: sum(1 for r in rows if r["state"] == k) for k in ("ok", "failing", "parked", "waiting", "new")}
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{len(rows)} feeds: {counts['ok']} ok, {counts['failing']} failing, {counts['parked']} parked, "
        f"{counts['waiting']} waiting (Retry-After), {counts['new']} never polled"
    )
    for column in ("url", "state", "last poll", "last success", "status", "entries", "fails", "next poll",
                   "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        url = r["url"] + (f"\n-> {r['discovered_url']}" if r["discovered_url"] else "")
        error = r["last_error"] or ""
        if r["page_failures"]:
            error += f"{'; ' if error else ''}{r['page_failures']} page failures (last: {r['last_page_error']})"
        table.add_row(
            url,
            r["state"],
            _short(r["last_poll"]),
            _short(r["last_success"]),
            str(r["http_status"] or "-"),
            str(r["entries_seen"]),
            str(r["consecutive_failures"]),
            f"{_short(r['next_poll'])} ({r['next_poll_reason']})" if r["next_poll_reason"] else _short(r["next_poll"]),
            error,
        )
    Console(width=max(Console().width, 160)).print(table)


def _short(value: str | None) -> str:
    return value.replace("+00:00", "Z").replace("T", " ") if value else "-"


@feeds_app.command("import")
def feeds_import(
    source: Annotated[Path, typer.Argument(help="OPML file (or plain list) to import.", show_default=False)],
    feeds: Annotated[
        Path,
        typer.Option("--feeds", envvar="NEWSWIRE_FEEDS", help="The feed list to add them to (created if missing)."),
    ],
    verbose: VerboseOpt = 0,
) -> None:
    """Add the feeds of an OPML file to the feed list (kept in its own format: OPML or plain text)."""
    _start(verbose, None)
    from newswire.connectors.feedlist import append_opml, append_plain, read_feed_list, write_opml
    from newswire.processors.canonical import canonical_url

    incoming = read_feed_list(source)
    current = read_feed_list(feeds) if feeds.exists() and feeds.stat().st_size else []
    have = {canonical_url(f.url) for f in current}
    added = [f for f in incoming if canonical_url(f.url) not in have]
    if added:
        # The list keeps its format and its content: new feeds are appended, nothing is rewritten.
        if not _is_opml(feeds):
            added = append_plain(added, feeds)
        elif current:
            added = append_opml(added, feeds)
        else:
            write_opml(added, feeds)
    typer.echo(f"imported {len(added)} new feeds into {feeds} ({len(incoming) - len(added)} already listed, "
               f"{len(current) + len(added)} in all)")


def _is_opml(path: Path) -> bool:
    if path.exists() and path.stat().st_size:
        return path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    return path.suffix.lower() in (".opml", ".xml")


@feeds_app.command("export")
def feeds_export(
    feeds: Annotated[Path, typer.Option("--feeds", envvar="NEWSWIRE_FEEDS", help="The feed list to export.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="OPML file to write (default: standard output).")
    ] = None,
    state_dir: StateDirOpt = None,
    state_url: StateUrlOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Write the feed list as OPML 2.0, with the titles the feeds gave themselves where known."""
    base = _start(verbose, state_dir, reads_state=True)
    import tempfile

    from newswire.connectors.feedlist import read_feed_list, write_opml
    from newswire.records import FeedSource

    listed = read_feed_list(feeds)
    titles: dict[str, str | None] = {}
    if state_url or (base / "state.db").exists():
        from newswire.connectors.state import StateStore

        with StateStore.open(base, state_url) as store:
            titles = {url: s.title for url, s in store.feeds_for(f.url for f in listed).items()}
    out = [FeedSource(f.url, f.title or titles.get(f.url)) for f in listed]
    if output is not None:
        write_opml(out, output)
        typer.echo(f"exported {len(out)} feeds to {output}", err=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feeds.opml"
        write_opml(out, path)
        sys.stdout.write(path.read_text("utf-8"))


@feeds_app.command("discover")
def feeds_discover(
    url: Annotated[str, typer.Argument(help="A site's page (or a feed URL).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    probes: Annotated[int, typer.Option("--probes", help="Feed candidates fetched at most.")] = 8,
    allow_host: AllowHostOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Find the feeds of a page (<link rel="alternate">, then common paths) and say which one is used."""
    _start(verbose, None)
    import asyncio

    from newswire.connectors.http import Fetcher
    from newswire.live import fetch_settings
    from newswire.polling import Poller, discover

    if not url.lower().startswith(("http://", "https://")):
        raise UserError(f"not an http(s) URL: {url!r}")
    if probes < 1:
        raise UserError("--probes must be at least 1")
    settings = Settings(allow_hosts=_split_hosts(allow_host), **schedule_from_env())

    async def go() -> Any:
        async with Fetcher(fetch_settings(settings)) as fetcher:
            return await discover(Poller(fetch=fetcher.fetch, discovery_probes=probes), url)

    found = asyncio.run(go())
    tried = {link.url: outcome for link, outcome in found.tried}
    if as_json:
        payload = {
            "url": url,
            "chosen": found.chosen.url if found.chosen else None,
            "format": found.parsed.format if found.parsed else None,
            "title": found.parsed.title if found.parsed else None,
            "candidates": [
                {"url": c.url, "kind": c.kind, "title": c.title, "source": c.source, "tried": tried.get(c.url)}
                for c in (found.candidates or [link for link, _ in found.tried])
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        for link, outcome in found.tried:
            typer.echo(f"  {'*' if found.chosen and link.url == found.chosen.url else '-'} {link.url}  "
                       f"[{link.source}{', ' + link.kind if link.source != 'given' else ''}] {outcome}")
        untried = [c for c in found.candidates if c.url not in tried and c.source == "link"]
        for link in untried:
            typer.echo(f"    {link.url}  [link, {link.kind}] not tried ({link.title or 'no title'})")
        if found.chosen is not None and found.parsed is not None:
            typer.echo(f"chosen: {found.chosen.url} ({found.parsed.format or 'feed'}, "
                       f"{len(found.parsed.entries)} entries, title {found.parsed.title!r})")
    if found.chosen is None:
        why = f" ({found.tried[0][1]})" if len(found.tried) == 1 else f" among {len(found.tried)} candidates tried"
        raise UserError(f"no feed found for {url}{why}")


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"newswire {__version__}")


# -- tag, taxonomy ------------------------------------------------------------------------------------


@app.command()
def tag(
    source: Annotated[
        str, typer.Argument(help="A text file (first line: the title), an HTML page, or - for stdin.")
    ] = "-",
    title: Annotated[
        str | None, typer.Option("--title", help="The title; then all of the input is the text.")
    ] = None,
    lead: Annotated[
        str | None, typer.Option("--lead", help="A feed summary, weighed as the lead.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="The page's address (helps extraction).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Show every topic, tagged or not.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    taxonomy: TaxonomyOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Tag one text or page and say why: each topic's score, threshold, terms and what was not counted.
    For checking a taxonomy edit; the pipeline tags the same way."""
    _start(verbose, None)
    from newswire.explain import explanation_json, explanation_lines, split_title
    from newswire.processors.tagging import Tagger, load_taxonomy

    tagger = Tagger(load_taxonomy(taxonomy))  # a broken taxonomy fails before the input is read
    if source == "-":
        if sys.stdin.isatty():  # nothing piped in: say so rather than wait for a typed text
            if title is None and lead is None:
                raise UserError("give a file to tag, pipe a text into `newswire tag -`, or give --title/--lead")
            data = b""  # a headline (and summary) alone, typed at a terminal
        else:
            data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {source}: {exc.strerror}") from None
    head = data[:1024].lstrip().lower()
    named_html = source != "-" and Path(source).suffix.lower() in (".html", ".htm", ".xhtml")
    if named_html or head.startswith((b"<!doctype html", b"<html")) or b"<body" in data[:4096].lower():
        from newswire.processors.extract import extract_article

        extraction = extract_article(data, url)
        if extraction is None:
            raise UserError(f"no article text found in {source}")
        text = extraction.text
        title = title if title is not None else extraction.title
    else:
        try:
            decoded = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError(f"{source} is neither UTF-8 text nor an HTML page") from None
        if title is None:
            title, text = split_title(decoded)
        else:
            text = decoded.strip()
    if not (title or text or lead):
        raise UserError(f"{source} is empty")
    explained = tagger.explain(title, text, lead=lead)
    if as_json:
        typer.echo(json.dumps(explanation_json(tagger.version, explained), ensure_ascii=False, indent=2))
        return
    typer.echo(f"taxonomy {tagger.version}")
    for line in explanation_lines(explained, show_all=show_all):
        typer.echo(line)


@taxonomy_app.command("check")
def taxonomy_check(
    path: Annotated[
        Path | None,
        typer.Argument(
            envvar="NEWSWIRE_TAXONOMY", help="YAML file or directory (default: built in).", show_default=False
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 2 on a warning of the taxonomy too (a learned model set aside), e.g. in CI; the "
            "embeddings extra's lines below do not count.",
        ),
    ] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Load a taxonomy as the pipeline would and list its topics; a mistake is one line naming the
    file and line, and exit status 2."""
    _start(verbose, None)
    from newswire.explain import combiner_lines, taxonomy_lines
    from newswire.processors.tagging import Tagger, load_taxonomy

    loaded = load_taxonomy(path)
    tagger = Tagger(loaded, embeddings=False)  # compiles every form, as a run would
    for line in taxonomy_lines(loaded):
        typer.echo(line)
    for line in combiner_lines(tagger):
        typer.echo(line)
    if strict and loaded.warnings:  # each warning was logged on the terminal as the taxonomy loaded
        count = len(loaded.warnings)
        raise UserError(f"--strict: the taxonomy loaded with {count} warning{'s' if count > 1 else ''} (above)")


@taxonomy_app.command("eval")
def taxonomy_eval(
    items: Annotated[
        Path,
        typer.Argument(help="Labelled items, JSON Lines: text, title, lead, topics (grades), traps.", show_default=False),
    ],
    taxonomy: TaxonomyOpt = None,
    errors: Annotated[bool, typer.Option("--errors", help="List every mistake, topic by topic.")] = False,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Precision, recall and F1 at thresholds 0.20-0.85, per topic.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Measure a taxonomy on your own labelled items: per topic, precision, recall and F1 with 95%
    intervals, recall on grade-2 items and the share of negatives tagged (the figures of the built-in
    evaluation). The file format is in docs/tagging.md."""
    _start(verbose, None)
    from dataclasses import asdict

    from newswire.labelled import SWEEP, evaluate, load_labelled
    from newswire.processors.tag_metrics import fmt, table_lines
    from newswire.processors.tagging import Tagger, load_taxonomy

    tagger = Tagger(load_taxonomy(taxonomy))
    labelled = load_labelled(items, tagger.taxonomy.slugs)
    evaluation = evaluate(tagger, labelled)
    if as_json:
        report = {
            "taxonomy": tagger.version,
            "items": len(labelled),
            "topics": evaluation.results,
            "mistakes": [asdict(m) for m in evaluation.mistakes] if errors else None,
            "sweep": {
                slug: [{"threshold": c, "precision": p, "recall": r, "f1": f} for c, p, r, f in rows]
                for slug, rows in evaluation.sweep.items()
            }
            if sweep
            else None,
        }
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    typer.echo(f"taxonomy {tagger.version}; {len(labelled)} items from {items}")
    for line in table_lines(evaluation.results):
        typer.echo(line)
    if errors:
        for m in evaluation.mistakes:
            what = f"missed (grade {m.grade})" if m.kind == "missed" else "wrongly tagged"
            matched = ", ".join(f"{k} x{v}" for k, v in m.matches.items()) or "no match"
            typer.echo(f"  {m.topic}: {what}, score {m.score:.2f}: {m.item}: {m.excerpt!r} [{matched}]")
    if sweep:
        topics = tagger.taxonomy.topics
        typer.echo("F1 (precision/recall) by threshold; * marks each topic's threshold")
        typer.echo("threshold " + "".join(f"{t.slug[:19]:<20}" for t in topics))
        for i, cut in enumerate(SWEEP):
            cells = []
            for t in topics:
                _, p, r, f = evaluation.sweep[t.slug][i]
                mark = "*" if abs(cut - t.threshold) < 1e-9 else " "
                cells.append(f"{mark}{fmt(f)} ({fmt(p)}/{fmt(r)})".ljust(20))
            typer.echo(f"{cut:<10.2f}" + "".join(cells))


@taxonomy_app.command("copy")
def taxonomy_copy(
    directory: Annotated[Path, typer.Argument(help="Where to write the shipped topic files.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Copy the shipped taxonomy's YAML files into DIRECTORY, to edit and pass as --taxonomy."""
    _start(verbose, None)
    from importlib import resources

    root = resources.files("newswire").joinpath("taxonomy")
    files = sorted((e.name, e.read_bytes()) for e in root.iterdir() if e.name.endswith((".yaml", ".yml")))
    clashes = [name for name, _ in files if (directory / name).exists()]
    if clashes and not force:
        raise UserError(f"{directory / clashes[0]} exists (--force overwrites)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files:
            (directory / name).write_bytes(content)
    except OSError as exc:
        raise UserError(f"cannot write to {directory}: {exc.strerror}") from None
    typer.echo(f"{len(files)} topic files written to {directory}; use them with --taxonomy {directory}")


# -- entry point --------------------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
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


_terminated = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a service manager stopping newswire) stops it as Ctrl-C does: what the broker
    acknowledged is marked done, the rest is retried by a later run. Exit status 143, as for SIGTERM."""
    global _terminated
    _terminated = True
    # Whatever handles Ctrl-C now: inside asyncio.run, its handler cancels the main task cleanly (a
    # KeyboardInterrupt raised here would land in whichever task runs, and asyncio prints it on exit).
    on_sigint = signal.getsignal(signal.SIGINT)
    if callable(on_sigint) and on_sigint is not signal.default_int_handler:
        on_sigint(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


def main() -> None:
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(standalone_mode=False)  # Ctrl-C inside a command: typer returns 130
        if _terminated:
            raise SystemExit(143)
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    except KeyboardInterrupt:
        raise SystemExit(143 if _terminated else 130) from None
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
            message = str(usage()).strip()
            if not message:  # help was shown (no arguments given)
                raise SystemExit(EXIT_USER) from None
            _fail(message, EXIT_USER)
        if type(exc).__name__ == "Abort":
            _fail("aborted", 130)
        if _log_file is None:  # failed before the command set up its log: the traceback goes to the default one
            with contextlib.suppress(Exception):  # the state dir itself may be what is broken
                _start(0, None)
        log.exception("internal error", extra=FILE_ONLY)
        where = f"traceback in {_log_file}" if _log_file is not None else "no log file could be written"
        _fail(f"internal error: {type(exc).__name__}: {exc} ({where})", EXIT_INTERNAL)


if __name__ == "__main__":
    main()
