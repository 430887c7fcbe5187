"""The extraction as the pipeline hands it to the process pool.

The main process only names the task and reads the extractor's version: it never imports the
extractor itself (trafilatura with htmldate, justext, py3langid and numpy: about 0.3 s of CPU at
every start, for a process that extracts nothing). The worker imports it on first use, or finds it
preloaded (:mod:`newswire.worker_preload`).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newswire.records import Extraction

__all__ = ["EXTRACTOR", "extract_page"]

#: ``pipeline.extractor`` in every message.
EXTRACTOR = f"trafilatura {version('trafilatura')}"


def extract_page(body: bytes, url: str | None, content_type: str | None = None) -> Extraction | None:
    """:func:`newswire.processors.extract.extract_article`, imported where it runs."""
    from newswire.processors.extract import extract_article

    return extract_article(body, url, content_type)
