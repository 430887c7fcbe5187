"""Pack the 875 real feed snapshots of ../shared/corpus/feeds/gesab001_headlines into one WARC.

Each snapshot becomes a ``response`` record (HTTP 200, ``Content-Type: application/rss+xml``,
``WARC-Newswire-Kind: feed``) dated by its manifest ``snapshot_commit_date``. The snapshots name their
feed by file only, so the target URI is made up: ``http://feeds.test/<feed file>`` (e.g.
``http://feeds.test/bbc.xml``; ``.test`` never resolves). The 13 snapshots that are HTML error pages or
empty are packed too, as they were fetched: replay dead-letters them as unparseable feeds.

    .venv/bin/python benchmarks/pack_feed_snapshots.py --out /tmp/snapshots.warc.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from corpus_warc import corpus_dir, write_warc

FEED_BASE = "http://feeds.test/"


def snapshot_records(corpus: Path) -> Iterator[tuple[str, datetime, str, bytes]]:
    folder = corpus / "feeds" / "gesab001_headlines"
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text("utf-8").splitlines() if line.strip()]
    # Archive-time order: by commit date; the manifest's own order breaks ties.
    rows.sort(key=lambda row: datetime.fromisoformat(row["snapshot_commit_date"]))
    for row in rows:
        body = gzip.decompress((folder / row["file"]).read_bytes())
        date = datetime.fromisoformat(row["snapshot_commit_date"]).astimezone(UTC)
        yield FEED_BASE + row["feed"], date, "application/rss+xml", body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the WARC file to write (.warc.gz)")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus dir (default ../shared/corpus)")
    args = parser.parse_args()
    count = write_warc(args.out, snapshot_records(corpus_dir(args.corpus)), "feed")
    print(f"{count} feed snapshots -> {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
