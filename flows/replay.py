"""Prefect flow of a replay, for ops to trigger from the UI with parameters.

Thin: one task calls :func:`newswire.replay.replay` (which already extracts in a process pool and
publishes in batches; the archive is indexed once, so splitting it across tasks would only re-read it).
Deploy it like the poll flow, e.g. ``newswire.flows.replay:replay_flow`` in ``prefect.yaml``, or serve
it locally with :func:`serve_replay`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from newswire.config import Settings, default_state_dir, settings_from_params, settings_to_params
from newswire.logs import quiet_prefect, route_prefect_logs_to_file

quiet_prefect(default_state_dir() / "prefect")  # before Prefect is imported; the CLI may have set it already

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from newswire.pipeline import RunSummary
from newswire.replay import parse_time, replay

route_prefect_logs_to_file()


@task(name="replay-archive", cache_policy=NO_CACHE, retries=0)
def replay_task(
    paths: list[str],
    params: dict[str, Any],
    since: str | None,
    until: str | None,
    feeds: list[str],
    skip_published: bool,
) -> dict[str, Any]:
    summary = replay(
        settings_from_params(params),
        [Path(p) for p in paths],
        since=parse_time(since) if since else None,
        until=parse_time(until) if until else None,
        feeds=feeds,
        skip_published=skip_published,
    )
    return asdict(summary)


@flow(name="newswire-replay", log_prints=False)
def replay_flow(
    paths: list[str],
    since: str | None = None,
    until: str | None = None,
    feeds: list[str] | None = None,
    skip_published: bool = False,
    topic_prefix: str | None = None,
    taxonomy: str | None = None,
    bootstrap_servers: str | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Replay WARC files/directories ``paths`` (on the worker's file system); returns the run summary.

    ``since``/``until`` are ISO 8601 times (UTC when no offset), ``feeds`` feed URLs; ``topic_prefix``,
    ``taxonomy`` and ``bootstrap_servers`` override the matching entries of ``params`` (the full
    settings, as :func:`newswire.config.settings_to_params` writes them; defaults when omitted).
    """
    values = dict(params) if params is not None else settings_to_params(Settings())
    for key, value in (("topic_prefix", topic_prefix), ("taxonomy", taxonomy), ("bootstrap_servers", bootstrap_servers)):
        if value is not None:
            values[key] = value
    result: dict[str, Any] = replay_task(paths, values, since, until, list(feeds or []), skip_published)
    return result


def run_replay_flow(
    paths: list[Path],
    settings: Settings,
    *,
    since: str | None = None,
    until: str | None = None,
    feeds: list[str] | None = None,
    skip_published: bool = False,
) -> RunSummary:
    """One flow run; a failure re-raises the original exception (for the CLI's one-line error)."""
    state = replay_flow(
        [str(p.resolve()) for p in paths],
        since,
        until,
        feeds,
        skip_published,
        params=settings_to_params(settings),
        return_state=True,
    )
    result: dict[str, Any] = state.result(raise_on_failure=True)
    return RunSummary(**result)


def serve_replay() -> None:
    """Serve the flow (no schedule) so runs can be triggered from the UI with parameters."""
    replay_flow.serve(name="newswire-replay", print_starting_message=False)
