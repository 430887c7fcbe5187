"""Scale-out benchmark: feeds/s and articles/s with 1 and 2 worker processes, SQLite vs PostgreSQL.

Not a test. A farm of generated feeds (4 items each, every article carried by two feeds) on 8 loopback
hosts (127.0.0.2-9) answering after 100 ms, a Tansu broker, and for PostgreSQL a throwaway server
(tests/support/postgres.py). Each configuration gets a fresh state store and topic prefix, and runs:

* cold:   every feed new: poll, fetch every article page, extract, tag, publish, commit;
* steady: every feed again (``--all``): conditional GETs answered 304, nothing new, which is what
          most polls of a large list are.

Wall time counts from the workers' start (Python, extraction pool, broker connection: ~2 s) to the
last one's end; run time is the longest worker's time inside its poll cycles. On PostgreSQL the database's transactions and row operations per feed are printed too.

    .venv/bin/python benchmarks/scale_bench.py [--feeds 400] [--workers 1 2] [--backends sqlite postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newswire.config import Settings, settings_to_params
from newswire.devbroker import DevBroker
from tests.support.feed_farm import start_feed_farm, write_taxonomy
from tests.support.postgres import PostgresUnavailable, create_database, running_postgres

HOSTS = tuple(f"127.0.0.{i}" for i in range(2, 10))


@dataclass
class Row:
    backend: str
    workers: int
    phase: str
    feeds: int
    articles: int
    wall: float
    run: float  # the longest worker's time in its poll cycles (no process start-up)
    db: dict[str, int] | None

    def line(self) -> str:
        per_feed = ""
        if self.db and self.feeds:
            per_feed = (f"{self.db['xact'] / self.feeds:6.2f} tx/feed  "
                        f"{(self.db['ins'] + self.db['upd'] + self.db['del']) / self.feeds:6.2f} rows written/feed")
        run = max(self.run, 1e-9)
        return (f"{self.backend:10} {self.workers:>7} {self.phase:7} {self.feeds:>6} {self.articles:>8} "
                f"{self.wall:7.1f} {self.feeds / self.wall:8.1f} {self.articles / self.wall:10.1f} "
                f"{self.run:6.1f} {self.feeds / run:8.1f} {self.articles / run:10.1f}  {per_feed}")


def pg_stats(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted, tup_fetched "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return dict(zip(("xact", "ins", "upd", "del", "fetched"), (int(v) for v in row)))


def run_workers(count: int, settings: Settings, feeds: Path, poll_all: bool) -> tuple[list[dict[str, Any]], float]:
    params = json.dumps(settings_to_params(settings))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.support.scale_worker", params, str(feeds)] + (["--all"] if poll_all else [])
    started = time.monotonic()
    procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    outs = [p.communicate(timeout=1800) for p in procs]
    wall = time.monotonic() - started
    for proc, (out, err) in zip(procs, outs):
        if proc.returncode != 0 or not out.strip():
            raise SystemExit(f"worker failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()

    rows: list[Row] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        broker = DevBroker()
        broker.start()
        stack.callback(broker.stop)
        pg = None
        if "postgresql" in args.backends:
            try:
                pg = stack.enter_context(running_postgres())
            except PostgresUnavailable as exc:
                print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        farm = stack.enter_context(start_feed_farm(args.feeds, hosts=HOSTS, delay=args.delay))
        feeds = farm.write_list(base / "feeds.txt")
        taxonomy = write_taxonomy(base / "harbour.yaml")
        for backend in args.backends:
            if backend == "postgresql" and pg is None:
                continue
            for count in args.workers:
                name = f"b{uuid.uuid4().hex[:8]}"
                state_url = create_database(pg, name) if backend == "postgresql" and pg else None
                settings = Settings(
                    bootstrap_servers=broker.bootstrap, topic_prefix=name, state_dir=base / name,
                    state_url=state_url, allow_hosts=frozenset(HOSTS), taxonomy=taxonomy, archive=False,
                    extract_workers=1, concurrency=64, per_host=8, lease_batch=100, lease_seconds=120.0,
                )
                for phase, poll_all in (("cold", False), ("steady", True)):
                    before = pg_stats(state_url) if state_url else None
                    summaries, wall = run_workers(count, settings, feeds, poll_all)
                    after = pg_stats(state_url) if state_url else None
                    db = {k: after[k] - before[k] for k in after} if before and after else None
                    row = Row(backend, count, phase, sum(s["feeds_polled"] for s in summaries),
                              sum(s["published"] for s in summaries), wall,
                              max(s["elapsed"] for s in summaries), db)
                    rows.append(row)
                    print(row.line(), file=sys.stderr, flush=True)
    print(f"{args.feeds} feeds x 4 items (2 carriers per article) on {len(HOSTS)} loopback hosts, "
          f"{args.delay * 1000:.0f} ms per response; {os.cpu_count()} cores")
    print(f"{'backend':10} {'workers':>7} {'phase':7} {'feeds':>6} {'articles':>8} {'wall s':>7} {'feeds/s':>8} "
          f"{'articles/s':>10} {'run s':>6} {'feeds/s':>8} {'articles/s':>10}  database (PostgreSQL)")
    print(f"{'':53}(wall: from process start)      (run: in poll cycles)")
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    main()
