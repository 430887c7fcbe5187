"""newswire's trafilatura speedups on every corpus page: identical extractions, and the CPU saved.

One process, one pass with the speedups (``processors/trafilatura_speedups.py``) and one on stock
trafilatura, over the same pages; prints a table: pages, extractions that differ (must be 0), CPU
seconds of each pass and their ratio.

    .venv/bin/python benchmarks/speedups_identity.py [--corpus DIR] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_warc import corpus_dir
from pack_article_pages import page_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="corpus dir (default ../shared/corpus)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    args = parser.parse_args()

    from newswire.processors import trafilatura_speedups
    from newswire.processors.extract import extract_article

    pages = [(uri, body) for uri, _, _, body in page_records(corpus_dir(args.corpus), args.limit)]
    extract_article(pages[0][1], pages[0][0], "text/html")  # imports and lazy loads out of the timing

    def timed_pass() -> tuple[list[object], float]:
        started = time.process_time()
        results: list[object] = [extract_article(body, uri, "text/html") for uri, body in pages]
        return results, time.process_time() - started

    trafilatura_speedups.install()
    fast, fast_cpu = timed_pass()
    trafilatura_speedups.uninstall()
    try:
        stock, stock_cpu = timed_pass()
    finally:
        trafilatura_speedups.install()
    differing = [uri for (uri, _), a, b in zip(pages, fast, stock, strict=True) if a != b]

    rows = [
        ("pages", f"{len(pages)}"),
        ("extractions that differ", f"{len(differing)}"),
        ("CPU s with the speedups", f"{fast_cpu:.1f}"),
        ("CPU s on stock trafilatura", f"{stock_cpu:.1f}"),
        ("ratio (with / stock)", f"{fast_cpu / stock_cpu:.3f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}")
    for uri in differing[:20]:
        print(f"differs: {uri}")
    if differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
