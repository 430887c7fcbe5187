"""The ``newswire`` command. Every option also reads an environment variable ``NEWSWIRE_<NAME>``.

Errors a user can cause end in one line on stderr and a non-zero exit; internal errors print one line
and keep their traceback in the log file (``<state dir>/newswire.log``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from newswire import __version__
from newswire.config import ConfigError, Settings, default_state_dir, parse_kafka_options
from newswire.logs import FILE_ONLY, setup_logging

log = logging.getLogger("newswire")

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


class UserError(Exception):
    """Raised inside commands for a one-line error and exit status 2."""


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
        help="KEY=VALUE passed to kafka-python (security_protocol, sasl_*, ssl_*...); repeatable or ';'-separated.",
    ),
]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-v, -vv).")]


def _split_hosts(values: list[str] | None) -> frozenset[str]:
    hosts: set[str] = set()
    for value in values or []:
        hosts.update(h.strip().lower() for h in value.replace(",", " ").split() if h.strip())
    return frozenset(hosts)


def _settings(**values: Any) -> Settings:
    state_dir = values.pop("state_dir") or default_state_dir()
    kafka = parse_kafka_options(values.pop("kafka_options") or [])
    hosts = _split_hosts(values.pop("allow_hosts"))
    return Settings(state_dir=state_dir, kafka_options=kafka, allow_hosts=hosts, **values)


def _start(verbose: int, state_dir: Path | None) -> Path:
    base = state_dir or default_state_dir()
    setup_logging(verbose, base / "newswire.log")
    return base


# -- run ----------------------------------------------------------------------------------------------


@app.command()
def run(
    feeds: Annotated[
        Path, typer.Option("--feeds", envvar="NEWSWIRE_FEEDS", help="Feed list: OPML or one URL per line.")
    ],
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit (default: keep polling).")] = False,
    all_feeds: Annotated[bool, typer.Option("--all", help="Poll every feed, not only those due.")] = False,
    interval: Annotated[
        float, typer.Option("--interval", envvar="NEWSWIRE_INTERVAL", help="Minutes between polls of a feed.")
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
    verbose: VerboseOpt = 0,
) -> None:
    """Poll the feeds in FILE, publish every new article, commit."""
    _start(verbose, state_dir)
    if interval <= 0:
        raise UserError("--interval must be a positive number of minutes")
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
    )
    if settings.state_url:
        raise UserError("--state-url: only the embedded SQLite store (--state-dir) is available in this version")
    from newswire.connectors.feedlist import read_feed_list

    feed_list = read_feed_list(feeds)
    from newswire.logs import quiet_prefect

    quiet_prefect(settings.state_dir / "prefect")
    if not once:
        from newswire.flows.poll import serve_poll

        typer.echo(f"newswire: polling {len(feed_list)} feeds every {interval:g} min via Prefect (Ctrl-C stops)", err=True)
        serve_poll(feeds, settings, interval_minutes=interval)
        return
    import os

    use_prefect = prefect if prefect is not None else bool(os.environ.get("PREFECT_API_URL"))
    if use_prefect:
        from newswire.flows.poll import run_poll_flow

        summary = run_poll_flow(feeds, settings, poll_all=all_feeds, interval_minutes=interval)
    else:
        from newswire.live import run_once

        with _progress("articles") as on_progress:
            summary = run_once(
                settings, feed_list, poll_all=all_feeds, interval=timedelta(minutes=interval), on_progress=on_progress
            )
    typer.echo(summary.line())
    if not summary.completed:
        raise typer.Exit(EXIT_UNAVAILABLE)


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
        list[str] | None, typer.Option("--feed", help="Only this feed's documents and the pages they link (repeatable).")
    ] = None,
    skip_published: Annotated[
        bool, typer.Option("--skip-published", help="Skip articles the live state (--state-dir) already published.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", envvar="NEWSWIRE_WORKERS", help="Extraction processes (0: one per core).")
    ] = 0,
    bootstrap_servers: BootstrapOpt = "127.0.0.1:9092",
    topic_prefix: PrefixOpt = "news",
    state_dir: StateDirOpt = None,
    taxonomy: TaxonomyOpt = None,
    kafka_option: KafkaOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Replay WARC archives through the pipeline (no network): feeds, their entries, archived pages."""
    _start(verbose, state_dir)
    from newswire.connectors.warc_reader import WarcReadError
    from newswire.replay import ReplayError, parse_time
    from newswire.replay import replay as run_replay

    if workers < 0:
        raise UserError("--workers must be 0 (one per core) or more")
    settings = _settings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        state_dir=state_dir,
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
    max_messages: Annotated[int | None, typer.Option("--max", help="Stop after N messages.")] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Stop after N seconds without a message.")
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
    settings = KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=topic_prefix,
        client_config=parse_kafka_options(kafka_option or []),
    )
    count = 0
    for received in consume(
        settings, [name], group=group, from_beginning=from_beginning, timeout_s=timeout, max_messages=max_messages
    ):
        count += 1
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
    state_dir: StateDirOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Every feed the state store knows: last poll, status, failures, next poll, last error."""
    base = _start(verbose, state_dir)
    from newswire.connectors.state import StateStore

    if not (base / "state.db").exists():
        raise UserError(f"no state store in {base} (run `newswire run` first, or pass --state-dir)")
    with StateStore.in_dir(base) as store:
        feeds = store.feeds()
    rows = [
        {
            "url": f.url,
            "title": f.title,
            "last_poll": _iso(f.last_poll_at),
            "last_success": _iso(f.last_success_at),
            "http_status": f.last_status,
            "entries_seen": f.entries_seen,
            "consecutive_failures": f.consecutive_failures,
            "page_failures": f.page_failures,
            "next_poll": _iso(f.next_poll_at),
            "last_error": f.last_error,
        }
        for f in feeds
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} feeds")
    for column in ("url", "last poll", "status", "entries", "fails", "next poll", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r["url"],
            r["last_poll"] or "-",
            str(r["http_status"] or "-"),
            str(r["entries_seen"]),
            str(r["consecutive_failures"]),
            r["next_poll"] or "-",
            r["last_error"] or "",
        )
    Console().print(table)


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"newswire {__version__}")


# -- entry point --------------------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"newswire: error: {message}\n")
    raise SystemExit(code)


def main() -> None:
    from newswire.connectors.feedlist import FeedListError
    from newswire.connectors.state import StateError
    from newswire.processors.tagging import TaxonomyError

    from newswire.connectors.kafka import KafkaConfigError

    user_errors: tuple[type[BaseException], ...] = (
        UserError,
        ConfigError,
        FeedListError,
        TaxonomyError,
        KafkaConfigError,
    )
    try:
        from newswire.connectors.kafka import BrokerUnavailable

        unavailable: tuple[type[BaseException], ...] = (BrokerUnavailable, StateError)
    except ImportError:  # pragma: no cover - kafka connector missing in a broken install
        unavailable = (StateError,)
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise SystemExit(code)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except user_errors as exc:
        _fail(str(exc), EXIT_USER)
    except unavailable as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    except Exception as exc:
        usage = getattr(exc, "format_message", None)
        if usage is not None and isinstance(getattr(exc, "exit_code", None), int):  # typer/click usage error
            message = str(usage()).strip()
            if not message:  # help was shown (no arguments given)
                raise SystemExit(EXIT_USER) from None
            _fail(message, EXIT_USER)
        if type(exc).__name__ == "Abort":
            _fail("aborted", 130)
        log.error("internal error", exc_info=True, extra=FILE_ONLY)
        _fail(f"internal error: {type(exc).__name__}: {exc} (traceback in the log file)", EXIT_INTERNAL)


if __name__ == "__main__":
    main()
