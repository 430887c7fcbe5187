"""``newswire replay``: WARC archives through the pipeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from newswire.cli._common import (
    BootstrapOpt,
    KafkaOpt,
    PrefixOpt,
    StateDirOpt,
    StateUrlOpt,
    TaxonomyOpt,
    UserError,
    VerboseOpt,
    app,
    finish,
    make_settings,
    multiproc_dir,
    start,
)


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
    start(verbose, state_dir)
    multiproc_dir(writes=True)
    from newswire.pool import start_forkserver

    start_forkserver()  # its preload overlaps the imports below
    from newswire.connectors.warc_reader import WarcReadError
    from newswire.replay import ReplayError, parse_time
    from newswire.replay import replay as run_replay

    if workers < 0:
        raise UserError("--workers must be 0 (one per core) or more")
    settings = make_settings(
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
    finish(summary.line(replay=True), completed=summary.completed)


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
