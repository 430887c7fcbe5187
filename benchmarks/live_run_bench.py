"""A live run over a local web of real corpus pages: articles/s, and text quality against the truth files.

    .venv/bin/python benchmarks/live_run_bench.py --pages 600 --delay 0.1

Starts a Tansu broker and a loopback web server serving N corpus pages (with truth) and three feeds
(RSS 2.0, Atom, RSS 1.0) linking them; every response can be delayed to stand in for a real network.
Runs the pipeline once (the same ``run_once`` as ``newswire run --once``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds before each response")
    parser.add_argument("--workers", type=int, default=0, help="extraction processes (0: one per core)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from newswire.config import Settings
    from newswire.connectors.kafka import KafkaSettings, consume
    from newswire.devbroker import DevBroker
    from newswire.live import run_once
    from newswire.records import FeedSource
    from tests.integration.test_pipeline_corpus import token_f1
    from tests.support.corpus_web import corpus_dir, start_corpus_web

    if corpus_dir() is None:
        print("corpus not found (../shared/corpus or $NEWSWIRE_CORPUS)", file=sys.stderr)
        return 2
    with DevBroker() as broker, start_corpus_web(args.pages, delay=args.delay) as web, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            bootstrap_servers=broker.bootstrap,
            topic_prefix="bench",
            state_dir=Path(tmp),
            allow_hosts=frozenset({"127.0.0.1"}),
            extract_workers=args.workers,
        )
        feeds = [FeedSource(u) for u in web.feed_urls]
        started = time.monotonic()
        summary = run_once(settings, feeds)
        elapsed = time.monotonic() - started
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
        bodies = [json.loads(m.value) for m in consume(kafka, ["bench.articles"], from_beginning=True, timeout_s=2)]
        truths = web.truth_by_url
        scores = [token_f1(b["text"], truths[b["url"]]) for b in bodies if b["text_source"] == "page"]
        second_started = time.monotonic()
        again = run_once(settings, feeds, poll_all=True)
        second = time.monotonic() - second_started

    table = Table(title=f"live run over {args.pages} corpus pages, {args.delay * 1000:.0f} ms per response")
    for column in ("measure", "value"):
        table.add_column(column)
    rows = [
        ("cores", str(os.cpu_count())),
        ("extraction processes", str(args.workers or os.cpu_count())),
        ("articles published", str(summary.published)),
        ("from pages / from feeds", f"{summary.from_page} / {summary.from_feed}"),
        ("duplicates skipped", str(summary.duplicates)),
        ("messages read back", str(len(bodies))),
        ("unique ids read back", str(len({b['id'] for b in bodies}))),
        ("run time", f"{elapsed:.1f} s"),
        ("articles/s", f"{summary.published / elapsed:.1f}"),
        ("mean token F1 vs truth (page texts)", f"{sum(scores) / max(len(scores), 1):.3f} over {len(scores)} pages"),
        ("repeat poll", f"{again.feeds_not_modified} of {again.feeds_polled} feeds 304, {again.published} published, {second:.1f} s"),
    ]
    for row in rows:
        table.add_row(*row)
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
