"""Shared by the corpus packers: find the corpus, write records through the live archive writer."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from newswire.connectors.warc_writer import WarcArchive
from newswire.records import FetchResult

ROOT = Path(__file__).resolve().parents[1]


def corpus_dir(explicit: Path | None = None) -> Path:
    """``--corpus``, else ``$NEWSWIRE_CORPUS``, else ``../shared/corpus`` next to the repository."""
    path = explicit or Path(os.environ.get("NEWSWIRE_CORPUS") or ROOT.parent / "shared" / "corpus")
    if not path.is_dir():
        raise SystemExit(f"corpus not found at {path} (pass --corpus or set NEWSWIRE_CORPUS)")
    return path


def write_warc(
    out: Path, records: Iterable[tuple[str, datetime, str, bytes]], kind: Literal["feed", "page"]
) -> int:
    """Write (uri, date, content type, body) as 200 responses into the single WARC file ``out``, through
    the live pipeline's writer (same headers, per-record gzip, ``WARC-Newswire-Kind``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        with WarcArchive(Path(tmp), max_bytes=1 << 62, software="newswire corpus packer") as archive:
            for uri, date, content_type, body in records:
                archive.write(FetchResult(uri, uri, 200, {"content-type": content_type}, body, date), kind)
                count += 1
        (written,) = Path(tmp).glob("*.warc.gz")
        shutil.move(written, out)
    return count
