"""Replay throughput on the real corpus, against bare trafilatura on the same pages with the same cores.

Packs two WARCs into a temporary directory (benchmarks/pack_article_pages.py, pack_feed_snapshots.py),
starts a Tansu broker on loopback, then measures in one run:

* pages: the article pages replay extracts (unique by canonical URL), by
  - bare ``trafilatura.extract(body, url=...)`` (defaults: text only) in a pool of N processes, timed
    from the pool's start (process start and imports included, as a replay's are) and once warm;
  - bare ``trafilatura.bare_extraction(body, url=..., with_metadata=True)``: trafilatura producing the
    fields a message carries (title, authors, date, site name, language);
  - the pipeline's own extractor (``extract_article``: charset decoding, metadata, dates, language)
    alone in the same pool, warm, with and without newswire's trafilatura speedups
    (``processors/trafilatura_speedups.py``; the bare baselines always run stock trafilatura);
  - ``newswire replay`` end to end, as a user runs it (a process of its own: interpreter start,
    imports, WARC index, extraction in its pool, tagging, messages, publishing to the broker), with
    the broker's CPU measured on its own too (in production the broker is on other machines);
* snapshots: the 875 feed snapshots replayed end to end: unique articles published, seconds; then the
  articles topic is read back to check that every id is there once.

    .venv/bin/python benchmarks/replay_bench.py [--workers N] [--only pages|snapshots] [--limit N]

The machine is shared, so runs are noisy: the bare and replay measurements alternate (``--rounds``)
and the best round of each is reported.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_warc import corpus_dir, write_warc
from pack_article_pages import page_records
from pack_feed_snapshots import snapshot_records


def process_tree(root: int) -> dict[int, tuple[int, float]]:
    """``root`` and its descendants, from /proc: pid -> (parent pid, CPU seconds used so far)."""
    table = CpuMeter._table()
    mine = {root}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return {pid: table[pid] for pid in mine if pid in table}


class CpuMeter:
    """CPU seconds (user+system) used by this process and all its descendants (pool workers, the
    forkserver, the broker) between start() and stop(). The machine is shared, so wall time says as
    much about the neighbours as about us; CPU seconds per page do not. Descendants are sampled from
    /proc every 0.1 s (a process that dies between samples loses at most that much)."""

    def __init__(self) -> None:
        self._seen: dict[int, float] = {}
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own = 0.0

    @staticmethod
    def _table() -> dict[int, tuple[int, float]]:
        tick = os.sysconf("SC_CLK_TCK")
        table: dict[int, tuple[int, float]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
        return table

    def _descendants(self) -> dict[int, float]:
        own = os.getpid()
        return {pid: cpu for pid, (_, cpu) in process_tree(own).items() if pid != own}

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for pid, cpu in self._descendants().items():
                self._seen[pid] = cpu

    def start(self) -> None:
        self._base = self._descendants()
        self._seen = dict(self._base)
        self._own = time.process_time()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> float:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        for pid, cpu in self._descendants().items():
            self._seen[pid] = cpu
        children = sum(cpu - self._base.get(pid, 0.0) for pid, cpu in self._seen.items())
        return children + time.process_time() - self._own


def _stock_trafilatura() -> None:
    """The baselines are trafilatura as released: undo newswire's speedups should anything in this
    worker have imported newswire's extractor (which installs them)."""
    import sys

    if "newswire.processors.trafilatura_speedups" in sys.modules:
        sys.modules["newswire.processors.trafilatura_speedups"].uninstall()


def bare_trafilatura(item: tuple[bytes, str]) -> bool:
    import trafilatura

    _stock_trafilatura()
    body, url = item
    return trafilatura.extract(body, url=url) is not None


def bare_trafilatura_metadata(item: tuple[bytes, str]) -> bool:
    import trafilatura

    _stock_trafilatura()
    body, url = item
    return trafilatura.bare_extraction(body, url=url, with_metadata=True) is not None


def pipeline_extractor(item: tuple[bytes, str]) -> bool:
    from newswire.processors import trafilatura_speedups
    from newswire.processors.extract import extract_article

    trafilatura_speedups.install()
    body, url = item
    return extract_article(body, url, "text/html") is not None


def pipeline_extractor_stock(item: tuple[bytes, str]) -> bool:
    """The pipeline's extractor on stock trafilatura (without newswire's speedups)."""
    from newswire.processors.extract import extract_article

    _stock_trafilatura()
    body, url = item
    return extract_article(body, url, "text/html") is not None


def _warm(_: int) -> int:
    import trafilatura  # noqa: F401

    return os.getpid()


def pool_run(
    fn: Callable[[tuple[bytes, str]], bool], items: list[tuple[bytes, str]], workers: int
) -> tuple[float, float, float]:
    """(seconds from pool start incl. process start and imports, CPU seconds of that, seconds of a
    second warm pass)."""
    context = multiprocessing.get_context("forkserver")
    meter = CpuMeter()
    meter.start()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        list(pool.map(fn, items, chunksize=4))
        cold = time.perf_counter() - started
        cpu = meter.stop()
        list(pool.map(_warm, range(workers)))
        again = time.perf_counter()
        list(pool.map(fn, items, chunksize=4))
        warm = time.perf_counter() - again
    return cold, cpu, warm


_SUMMARY = re.compile(
    r"replay: (?P<records>\d+) records read, (?P<published>\d+) articles published \((?P<pages>\d+) from pages, "
    r"(?P<feeds>\d+) from feeds\), (?P<duplicates>\d+) duplicates skipped, \d+ page failures, "
    r"(?P<dead>\d+) dead letters, (?P<malformed>\d+) malformed records skipped, (?P<seconds>[0-9.]+) s"
)


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user+system) a running process has used so far."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def replay_cli(bootstrap: str, warc: Path, workers: int, state: Path) -> tuple[dict[str, float], float]:
    """``newswire replay`` as a user runs it, in a process of its own (its interpreter start, imports,
    worker pool and forkserver preload included): the summary line's figures and the wall seconds."""
    newswire = Path(sys.executable).with_name("newswire")
    command = [str(newswire), "replay", str(warc), "--bootstrap-servers", bootstrap, "--workers", str(workers),
               "--topic-prefix", f"bench{uuid.uuid4().hex[:8]}", "--state-dir", str(state)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    found = _SUMMARY.search(done.stdout + done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"newswire replay failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return {k: float(v) for k, v in found.groupdict().items()}, wall


def replay_once(bootstrap: str, warc: Path, workers: int, state: Path) -> tuple[Any, str]:
    from newswire.config import Settings
    from newswire.replay import replay

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, state_dir=state, extract_workers=workers)
    return replay(settings, [warc]), prefix


def pages_bench(
    bootstrap: str, broker_pid: int | None, warc: Path, workers: int, rounds: int, state: Path
) -> list[list[str]]:
    from newswire.connectors.warc_reader import ScanStats, read_body
    from newswire.replay import build_index

    index = build_index([warc], ScanStats())
    pages = sorted(index.pages.values(), key=lambda p: p.order)
    items = [(read_body(p.ref), p.uri) for p in pages]
    n = len(items)
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    summary = None
    for _ in range(rounds):
        cold, cpu, warm = pool_run(bare_trafilatura, items, workers)
        keep("bare", cold)
        keep("bare-cpu", cpu)
        keep("bare-warm", warm)
        cold, cpu, _ = pool_run(bare_trafilatura_metadata, items, workers)
        keep("meta", cold)
        keep("meta-cpu", cpu)
        meter = CpuMeter()
        meter.start()
        broker_before = process_cpu(broker_pid)
        summary, wall = replay_cli(bootstrap, warc, workers, state)
        keep("replay-cpu", meter.stop())
        keep("broker-cpu", process_cpu(broker_pid) - broker_before)
        keep("replay", wall)
        _, cpu, warm = pool_run(pipeline_extractor, items, workers)
        keep("extractor-cpu", cpu)
        keep("extractor-warm", warm)
        _, cpu, warm = pool_run(pipeline_extractor_stock, items, workers)
        keep("stock-cpu", cpu)
        keep("stock-warm", warm)
    assert summary is not None
    done = int(summary["published"] + summary["dead"])
    best["replay-cpu-nobroker"] = best["replay-cpu"] - best["broker-cpu"]
    rate = {k: n / v for k, v in best.items() if v > 0}
    rate["replay"] = done / best["replay"]
    rate["replay-cpu"] = done / best["replay-cpu"]
    rate["replay-cpu-nobroker"] = done / best["replay-cpu-nobroker"]

    def row(what: str, key: str, count: int, vs: str = "bare") -> list[str]:
        return [what, str(workers), str(count), f"{best[key]:.1f}", f"{rate[key]:.1f}", f"{rate[key] / rate[vs]:.2f}"]

    return [
        row("wall: bare trafilatura.extract, pool start included", "bare", n),
        row("wall: bare trafilatura.extract, warm pool", "bare-warm", n),
        row("wall: bare trafilatura.bare_extraction(with_metadata=True), pool start incl.", "meta", n),
        row("wall: pipeline extractor alone (extract_article), warm", "extractor-warm", n),
        row("wall: pipeline extractor on stock trafilatura (no speedups), warm", "stock-warm", n),
        row(f"wall: `newswire replay` end to end ({summary['published']:.0f} published, {summary['dead']:.0f} dead "
            "letters), process start included", "replay", done),
        row("CPU s: bare trafilatura.extract (workers, pool start included)", "bare-cpu", n, "bare-cpu"),
        row("CPU s: bare trafilatura.bare_extraction(with_metadata=True)", "meta-cpu", n, "bare-cpu"),
        row("CPU s: pipeline extractor alone (workers, pool start included)", "extractor-cpu", n, "bare-cpu"),
        row("CPU s: pipeline extractor on stock trafilatura (no speedups)", "stock-cpu", n, "bare-cpu"),
        row("CPU s: replay (main + workers + broker, everything included)", "replay-cpu", done, "bare-cpu"),
        row("CPU s: replay without the broker's share (main + workers)", "replay-cpu-nobroker", done, "bare-cpu"),
        row("CPU s: replay vs bare_extraction(with_metadata=True)", "replay-cpu", done, "meta-cpu"),
        row("CPU s: replay vs the pipeline extractor alone", "replay-cpu", done, "extractor-cpu"),
    ]


def snapshots_bench(bootstrap: str, warc: Path, workers: int, state: Path) -> list[list[str]]:
    from newswire.connectors.kafka import KafkaSettings, consume

    summary, prefix = replay_once(bootstrap, warc, workers, state)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    ids = [m.key for m in consume(kafka, [kafka.topic("articles")], from_beginning=True, timeout_s=3.0)]
    once = len(ids) == len(set(ids)) == summary.published
    what = (
        f"snapshots: {summary.feeds_polled} feed documents parsed ({summary.feeds_failed} not feeds), "
        f"{summary.entries_seen} entries -> unique articles published"
    )
    check = (
        f"  {summary.duplicates} duplicates skipped; read back {len(ids)} messages, {len(set(ids))} distinct ids: "
        f"{'every unique item once' if once else 'MISMATCH'}"
    )
    rate = f"{summary.published / summary.elapsed:.0f}"
    return [
        [what, str(workers), str(summary.published), f"{summary.elapsed:.1f}", rate, ""],
        [check, "", "", "", "", ""],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: cores)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of the pages measurements")
    parser.add_argument("--only", choices=("pages", "snapshots"), default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--corpus", type=Path, default=None)
    args = parser.parse_args()
    corpus = corpus_dir(args.corpus)

    from newswire.devbroker import DevBroker

    broker = DevBroker()
    broker.start()
    rows: list[list[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="newswire-replay-bench-") as tmp:
            work = Path(tmp)
            if args.only in (None, "pages"):
                warc = work / "pages.warc.gz"
                write_warc(warc, page_records(corpus, args.limit), "page")
                rows += pages_bench(broker.bootstrap, broker.pid, warc, args.workers, args.rounds, work / "state")
            if args.only in (None, "snapshots"):
                warc = work / "snapshots.warc.gz"
                write_warc(warc, snapshot_records(corpus), "feed")
                rows += snapshots_bench(broker.bootstrap, warc, args.workers, work / "state")
    finally:
        broker.stop()
    header = ["what", "workers", "items", "seconds", "items/s", "ratio"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    load = os.getloadavg()
    print(f"cores: {os.cpu_count()}, load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
