"""``newswire feeds``: the feed list (import, export, discover) and each feed's health."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from newswire.cli._common import (
    AllowHostOpt,
    StateDirOpt,
    StateUrlOpt,
    UserError,
    VerboseOpt,
    feeds_app,
    split_hosts,
    start,
)
from newswire.config import Settings, schedule_from_env

EXIT_TROUBLE = 1  # feeds status --check: a feed is failing, parked or pending


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
    failing: Annotated[
        bool, typer.Option("--failing", help="Only feeds that need attention: failing, parked, waiting or pending.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Exit 1 when a feed is failing, parked or pending (for health checks)."),
    ] = False,
    state_dir: StateDirOpt = None,
    state_url: StateUrlOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Every feed's health: last poll, last success, HTTP status, entries seen, consecutive failures,
    next poll (and why then), parked or waiting for a Retry-After, last error reason."""
    base = start(verbose, state_dir, reads_state=True)
    from datetime import UTC, datetime

    from newswire.connectors.state import StateStore, missing_sqlite_file
    from newswire.live import schedule_settings
    from newswire.processors.schedule import ScheduleState, entries_per_day
    from newswire.records import FeedState

    missing = missing_sqlite_file(base, state_url)
    no_store = missing is not None
    if no_store and feeds is None:
        where = f"in {base}" if not state_url else f"at {missing}"
        raise UserError(f"no state store {where} (run `newswire run` first, or pass --state-dir or --state-url)")
    if feeds is not None:
        from newswire.connectors.feedlist import read_feed_list

        listed = read_feed_list(feeds)
    if no_store:  # before the first run every listed feed is new; no store is created just to say so
        states = [FeedState(url=f.url, title=f.title) for f in listed]
    else:
        with StateStore.open(base, state_url) as store:
            if feeds is None:
                states = store.feeds()
            else:
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
            else "pending" if f.schedule_reason == "pending"  # entries the broker did not acknowledge
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
    # a server's Retry-After is its request, not trouble: --failing shows those feeds, --check lets them be
    troubled = any(r["state"] in ("failing", "parked", "pending") for r in rows)
    if failing:
        rows = [r for r in rows if r["state"] in ("failing", "parked", "waiting", "pending")]
    counts = {
        k: sum(1 for r in rows if r["state"] == k) for k in ("ok", "failing", "parked", "waiting", "pending", "new")
    }
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        _print_table(rows, counts)
    if check and troubled:
        raise typer.Exit(EXIT_TROUBLE)


def _print_table(rows: list[dict[str, Any]], counts: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{len(rows)} feeds: {counts['ok']} ok, {counts['failing']} failing, {counts['parked']} parked, "
        f"{counts['waiting']} waiting (Retry-After), {counts['pending']} pending (not acknowledged), "
        f"{counts['new']} never polled"
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
    start(verbose, None)
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
    base = start(verbose, state_dir, reads_state=True)
    import tempfile

    from newswire.connectors.feedlist import read_feed_list, write_opml
    from newswire.records import FeedSource

    listed = read_feed_list(feeds)
    titles: dict[str, str | None] = {}
    from newswire.connectors.state import StateStore, missing_sqlite_file

    if missing_sqlite_file(base, state_url) is None:  # titles from the store, never one created to ask
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
    start(verbose, None)
    import asyncio

    from newswire.connectors.http import Fetcher
    from newswire.live import fetch_settings
    from newswire.polling import Poller, discover

    if not url.lower().startswith(("http://", "https://")):
        raise UserError(f"not an http(s) URL: {url!r}")
    if probes < 1:
        raise UserError("--probes must be at least 1")
    settings = Settings(allow_hosts=split_hosts(allow_host), **schedule_from_env())

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
