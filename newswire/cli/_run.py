"""``newswire run``: poll the feed list once, or keep polling (served to Prefect when PREFECT_API_URL is set)."""

from __future__ import annotations

import os
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from newswire.cli._common import (
    MAX_INTERVAL_MINUTES,
    AllowHostOpt,
    ArchiveDirOpt,
    BootstrapOpt,
    KafkaOpt,
    MetricsAddrOpt,
    MetricsPortOpt,
    PartitionsOpt,
    PrefixOpt,
    ReplicationOpt,
    StateDirOpt,
    StateUrlOpt,
    TaxonomyOpt,
    Unavailable,
    UserError,
    VerboseOpt,
    app,
    finish,
    make_settings,
    multiproc_dir,
    session,
    start,
)

if TYPE_CHECKING:  # the flows (and Prefect) load only for the commands that run them
    from newswire.flows.poll import PrefectGone


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
    start(verbose, state_dir)
    multiproc_dir(writes=True)
    if not 0 < interval <= MAX_INTERVAL_MINUTES:  # also NaN and inf
        raise UserError(f"--interval must be a positive number of minutes, at most {MAX_INTERVAL_MINUTES:,}")
    if all_feeds and not once:  # it was ignored: every cycle of a long-running run polls the feeds due
        raise UserError("--all goes with --once (a run that keeps polling polls each feed when it is due)")
    settings = make_settings(
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
        from newswire.flows.poll import PrefectGone, every, poll_forever, serve_poll

        if api_url:
            typer.echo(
                f"newswire: serving the poll flow for {len(feed_list)} feeds on {os.environ['PREFECT_API_URL']}: "
                f"a run {every(interval)} polls the feeds due (Ctrl-C stops)",
                err=True,
            )
            try:
                stopped_by = serve_poll(feeds, settings, interval_minutes=interval, verbosity=verbose + session.verbose)
            except PrefectGone as exc:  # a supervisor restarting newswire on exit status 3 retries it later
                raise Unavailable(_prefect_unreachable(api_url, f"it stopped answering: {exc}", once=False)) from None
            # Prefect's runner took the signal (or newswire's SIGTERM handler did, before the runner's was set)
            raise SystemExit(143 if stopped_by == signal.SIGTERM or session.terminated else 130)
        else:
            typer.echo(
                f"newswire: polling {len(feed_list)} feeds, a Prefect flow run {every(interval)} for the feeds due "
                "(no Prefect server configured: set PREFECT_API_URL to serve it to one; Ctrl-C stops)",
                err=True,
            )
            _start_temporary_api()
            # a cycle that did nothing (no feed due) prints nothing unless -v: one line a minute adds up
            try:
                poll_forever(
                    feeds, settings, interval_minutes=interval, report=typer.echo, quiet=verbose + session.verbose < 1
                )
            except PrefectGone as exc:
                _temporary_api_gone(exc)
        return

    if use_prefect:
        from newswire.flows.poll import PrefectGone, run_poll_flow

        if not api_url:
            _start_temporary_api()
        try:
            summary = run_poll_flow(feeds, settings, poll_all=all_feeds, interval_minutes=interval)
        except PrefectGone as exc:
            if api_url:
                raise Unavailable(_prefect_unreachable(api_url, "no answer", once=True)) from None
            _temporary_api_gone(exc)
    else:
        from newswire.live import run_leased

        with _progress("articles") as on_progress:
            summary = run_leased(
                settings, feed_list, poll_all=all_feeds, interval=timedelta(minutes=interval), on_progress=on_progress
            )
    finish(summary.line(), completed=summary.completed)


def _start_temporary_api() -> None:
    """Without PREFECT_API_URL the flow runs report to Prefect's temporary API server: started before
    the first flow run, in a session of its own, so that a Ctrl-C at the terminal stops the run, not the
    server the run reports its end to (see newswire.flows.temporary_api)."""
    from newswire.flows.temporary_api import start_temporary_api

    if sys.stderr.isatty():  # a first start in a new state dir migrates its database: ~20 s of silence
        typer.echo("newswire: starting Prefect's temporary API server (PREFECT_API_URL is unset)", err=True)
    try:
        start_temporary_api()
    except RuntimeError as exc:  # Prefect's words: it timed out, or the server process exited
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Unavailable(f"Prefect's temporary API server did not start: {first}") from None


def _temporary_api_gone(exc: PrefectGone) -> NoReturn:
    """Prefect's temporary API server stopped under a flow run. Stopped with this process (a service
    manager signalling every process of the service): the run was stopped, 143 or 130. Otherwise
    something else stopped or killed it: exit 3, so a supervisor starts the run (and a server) again."""
    stopped_by = exc.stopped_by or (signal.SIGTERM if session.terminated else None)
    if stopped_by is not None:
        raise SystemExit(128 + stopped_by)
    raise Unavailable(f"Prefect's temporary API server stopped answering the flow run ({exc}); the run stopped")


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
