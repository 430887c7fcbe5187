"""Pack the real article pages of ../shared/corpus/articles into one WARC.

Each page becomes a ``response`` record (HTTP 200, ``Content-Type: text/html`` with no charset, so the
extractor decodes by the page's own declaration or by sniffing, ``WARC-Newswire-Kind: page``) with the
page's original bytes. Target URI: the manifest ``url``; pages without one (or with a non-http one,
such as trafilatura's ``hard::site-name.html`` labels) get a made-up ``http://pages.test/<id>.html``
(``.test`` never resolves). WARC-Date: 2026-01-01T00:00:00Z plus one
second per page in manifest order (the corpus has no fetch times; fixed dates keep replays identical).

    .venv/bin/python benchmarks/pack_article_pages.py --out /tmp/pages.warc.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from corpus_warc import corpus_dir, write_warc

PAGE_BASE = "http://pages.test/"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def page_records(corpus: Path, limit: int | None = None) -> Iterator[tuple[str, datetime, str, bytes]]:
    folder = corpus / "articles"
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text("utf-8").splitlines() if line.strip()]
    for number, row in enumerate(rows[:limit]):
        body = gzip.decompress((folder / row["file"]).read_bytes())
        url = row.get("url") or ""
        uri = url if url.startswith(("http://", "https://")) else f"{PAGE_BASE}{row['id']}.html"
        yield uri, EPOCH + timedelta(seconds=number), "text/html", body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the WARC file to write (.warc.gz)")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus dir (default ../shared/corpus)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    args = parser.parse_args()
    count = write_warc(args.out, page_records(corpus_dir(args.corpus), args.limit), "page")
    print(f"{count} article pages -> {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
