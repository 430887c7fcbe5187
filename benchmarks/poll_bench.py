"""One poll cycle over 10,000 feeds served locally: feeds/s and peak memory.

    .venv/bin/python benchmarks/poll_bench.py [--feeds 10000] [--hosts 50] [--delay 0.1] [--changed 0.1]
                                              [--concurrency N] [--variants full,no-pages]

The feeds live on ``--hosts`` loopback hosts (127.0.0.10, 127.0.0.11, ...), served by
``demo/webserver.py`` in a separate process (so the servers do not share the poller's interpreter)
and answering every request after ``--delay`` seconds, as a server across a network would. Each feed
is an RSS 2.0 document of 10 items.

Before each measured cycle the state store is primed as a previous cycle would have left it: every
feed polled before (ETag and body hash of its current document stored, due now), every item already
published. Then ``--changed`` of the feeds (10 %) get one new item, so the cycle sees 90 % answering 304
and 10 % answering 200 with one new entry whose article page is fetched, extracted, tagged and
published to a Tansu broker. ``run_once`` is the real live cycle (due feeds only, adaptive schedule,
WARC archive, SQLite commit).

Variants: ``full`` (article pages fetched and extracted) and ``no-pages`` (entries published from the
feed text: the polling alone). Prints a table: feeds/s over the whole cycle, requests, peak RSS of the
poller process, and of the poller with its extraction workers (sampled every 0.1 s; the servers and the
broker are not counted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newswire.config import Settings
from newswire.connectors.state import StateStore
from newswire.processors.canonical import article_id, canonical_url
from newswire.records import FeedSource, FeedState, PublishedRow
from tests.support.proc_memory import TreeMemory

ITEMS = 10
FIRST_HOST = 10
ARTICLE = (ROOT / "demo" / "sample" / "articles" / "kabul-airlift.html").read_bytes()


def host_of(index: int, hosts: int) -> str:
    return f"127.0.0.{FIRST_HOST + index % hosts}"


def feed_path(index: int) -> str:
    return f"/f/{index}.xml"


def feed_body(index: int, base: str, version: int) -> bytes:
    """The feed's document: ``ITEMS`` items, plus one more per version (newest first)."""
    items = []
    for k in range(ITEMS + version - 1, -1, -1):
        when = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(hours=(ITEMS + 5 - k) * 3)
        items.append(
            f"<item><title>Feed {index} story {k}</title><link>{base}/a/{index}-{k}.html</link>"
            f"<guid>{base}/a/{index}-{k}.html</guid><pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
            f"<description>Summary of story {k} of feed {index}: officials in Kabul met on Tuesday.</description></item>"
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {index}</title>'
        f"<link>{base}/</link><description>bench</description>{''.join(items)}</channel></rss>"
    ).encode()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:24] + '"'  # as demo/webserver.py computes it


def changed_indices(feeds: int, share: float) -> list[int]:
    step = max(1, round(1 / share)) if share > 0 else feeds + 1
    return list(range(0, feeds, step))


# -- the server process -----------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    """Child process: ``--hosts`` servers; reads commands on stdin: ``reset``, ``change``, ``quit``."""
    from demo.webserver import start_server

    servers = [start_server(None, host_of(h, args.hosts), delay=args.delay) for h in range(args.hosts)]
    bases = {s.host: s.base_url for s in servers}
    by_host = {s.host: s for s in servers}
    changed = changed_indices(args.feeds, args.changed)

    def publish(version_of: dict[int, int]) -> None:
        for index, version in version_of.items():
            host = host_of(index, args.hosts)
            by_host[host].add_route(feed_path(index), feed_body(index, bases[host], version),
                                    content_type="application/rss+xml")

    def reset() -> None:
        publish({i: 0 for i in range(args.feeds)})
        for index in changed:
            host = host_of(index, args.hosts)
            page = ARTICLE.replace(b"Kabul", f"Kabul ({index})".encode(), 1)
            by_host[host].add_route(f"/a/{index}-{ITEMS}.html", page, content_type="text/html; charset=utf-8")

    reset()
    print(json.dumps({"ready": True, "bases": bases}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "reset":
            reset()
        elif command == "change":
            publish({i: 1 for i in changed})
        elif command == "count":
            print(json.dumps({"requests": sum(len(s.requests) for s in servers)}), flush=True)
            for s in servers:
                s.clear_requests()
            continue
        elif command == "quit":
            break
        print(json.dumps({"done": command}), flush=True)
    for s in servers:
        s.stop()
    return 0


class ServerProcess:
    def __init__(self, args: argparse.Namespace) -> None:
        command = [sys.executable, __file__, "--serve", "--feeds", str(args.feeds), "--hosts", str(args.hosts),
                   "--delay", str(args.delay), "--changed", str(args.changed)]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.bases: dict[str, str] = self._read()["bases"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the server process ended early")
        data: dict[str, Any] = json.loads(line)
        return data

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


# -- the measured cycle -----------------------------------------------------------------------------


def prime(state_dir: Path, feeds: list[FeedSource], bases: dict[str, str], hosts: int) -> None:
    """The state a previous cycle left: validators of version 0 stored, every item published, all due."""
    now = datetime.now(UTC)
    states: list[FeedState] = []
    rows: list[PublishedRow] = []
    for index, feed in enumerate(feeds):
        base = bases[host_of(index, hosts)]
        body = feed_body(index, base, 0)
        states.append(
            FeedState(
                url=feed.url,
                title=f"Feed {index}",
                etag=etag_of(body),
                body_hash=hashlib.sha256(body).hexdigest(),
                last_poll_at=now - timedelta(hours=1),
                last_success_at=now - timedelta(hours=1),
                last_status=200,
                entries_seen=ITEMS,
                next_poll_at=now - timedelta(minutes=1),
            )
        )
        for k in range(ITEMS):
            url = canonical_url(f"{base}/a/{index}-{k}.html")
            rows.append(PublishedRow(article_id(url), url, feed.url))
    with StateStore.in_dir(state_dir) as store:
        store.save_feeds(states)
        store.mark_published(rows, now)


def measure(
    args: argparse.Namespace, server: ServerProcess, bootstrap: str, variant: str, exclude: set[int]
) -> dict[str, Any]:
    from newswire.live import run_once

    feeds = [FeedSource(f"{server.bases[host_of(i, args.hosts)]}{feed_path(i)}") for i in range(args.feeds)]
    with tempfile.TemporaryDirectory(prefix="poll-bench-") as tmp:
        state_dir = Path(tmp) / "state"
        server.ask("reset")
        prime(state_dir, feeds, server.bases, args.hosts)
        server.ask("change")
        server.ask("count")  # clears the request logs
        settings = Settings(
            bootstrap_servers=bootstrap,
            topic_prefix=f"bench{os.getpid()}{variant.replace('-', '')}",
            state_dir=state_dir,
            allow_hosts=frozenset(server.bases),
            concurrency=args.concurrency or Settings().concurrency,
            fetch_pages=variant == "full",
            extract_workers=2,
        )
        started = time.monotonic()
        with TreeMemory(exclude={server.proc.pid, *exclude}) as memory:
            summary = run_once(settings, feeds)
        elapsed = time.monotonic() - started
        requests = server.ask("count")["requests"]
        with StateStore.in_dir(state_dir) as store:
            due_again = sum(1 for s in store.feeds() if s.is_due(datetime.now(UTC)))
    return {
        "variant": variant,
        "feeds": summary.feeds_polled,
        "not_modified": summary.feeds_not_modified,
        "published": summary.published,
        "failed": summary.feeds_failed,
        "requests": requests,
        "seconds": elapsed,
        "feeds_per_s": summary.feeds_polled / elapsed,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tree_mib": memory.peak_mib,
        "due_again": due_again,
        "line": summary.line(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.1, help="server delay per response, seconds")
    parser.add_argument("--changed", type=float, default=0.1, help="share of feeds with a new item")
    parser.add_argument("--concurrency", type=int, default=0, help="overall fetch concurrency (default: Settings)")
    parser.add_argument("--variants", default="full,no-pages")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)
    if not 1 <= args.hosts <= 240:
        parser.error("--hosts must be between 1 and 240 (127.0.0.10 ...)")

    from newswire.devbroker import DevBroker
    from newswire.logs import quiet_prefect

    quiet_prefect(Path(tempfile.gettempdir()) / "poll-bench-prefect")
    broker = DevBroker()
    broker.start()
    server = ServerProcess(args)
    results = []
    try:
        for variant in args.variants.split(","):
            result = measure(args, server, broker.bootstrap, variant.strip(), {broker.pid} if broker.pid else set())
            print(result["line"], file=sys.stderr)
            results.append(result)
    finally:
        server.close()
        broker.stop(grace_s=0)
    concurrency = args.concurrency or Settings().concurrency
    print(f"\n{args.feeds} feeds on {args.hosts} loopback hosts, {args.delay * 1000:.0f} ms per response, "
          f"{args.changed:.0%} changed, concurrency {concurrency} (per host {Settings().per_host}), "
          f"{os.cpu_count()} cores")
    header = f"{'variant':10} {'feeds':>6} {'304':>6} {'published':>9} {'failed':>6} {'requests':>8} " \
             f"{'seconds':>8} {'feeds/s':>8} {'RSS MiB':>8} {'+workers':>8} {'due again':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['variant']:10} {r['feeds']:>6} {r['not_modified']:>6} {r['published']:>9} {r['failed']:>6} "
              f"{r['requests']:>8} {r['seconds']:>8.1f} {r['feeds_per_s']:>8.0f} {r['peak_rss_mib']:>8.0f} "
              f"{r['tree_mib']:>8.0f} "
              f"{r['due_again']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
