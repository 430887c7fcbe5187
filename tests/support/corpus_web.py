"""A local web of real news pages from ../shared/corpus, for integration tests.

Pages are read from the corpus at run time (never copied into the repository) and served, ungzipped and
byte for byte, by :mod:`demo.webserver` at ``/a/<id>.html`` with the charset the page declares (no
charset when it declares none, as some real servers do). Three generated feeds link to them:

* ``/feeds/corpus-rss.xml``  RSS 2.0, ``guid isPermaLink="false"``, ``pubDate``
* ``/feeds/corpus-atom.xml`` Atom 1.0, ``tag:``-style ids
* ``/feeds/corpus-rdf.rdf``  RSS 1.0 (RDF), ``dc:date``

Page ``i`` (in selection order) goes to feed ``i % 3``. Every fifth page (``i % 5 == 0``) is also linked
by the next feed, and that second link carries ``utm_`` tracking parameters, so the same article
arrives twice under two spellings; one in four of the RSS feed's own links (``i % 4 == 1``) carries them
too. Feed entries are dated from :data:`FEED_EPOCH` backwards, one hour apart, and their summaries are
the first words of the page's truth text.

Usage::

    corpus = require_corpus()                    # pytest.skip with a reason when absent
    with start_corpus_web(12, corpus=corpus) as web:
        run_pipeline(web.feed_urls)
        assert published_urls == set(web.page_urls)
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType
from typing import Self
from xml.sax.saxutils import escape, quoteattr

from demo.webserver import RunningServer, sniff_html_charset, start_server

REPO_ROOT = Path(__file__).resolve().parents[2]
FEED_EPOCH = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DEFAULT_LANGS = ("en", "de", "zh", "es", "fr", "ru", "ja", "pt")
UTM = "utm_source=newswire-test&utm_medium=feed&utm_campaign=corpus"
# The fetcher's page cap is 5 MiB; larger pages would test the cap, not the pipeline.
MAX_PAGE_BYTES = 2_000_000
FEED_PATHS = ("/feeds/corpus-rss.xml", "/feeds/corpus-atom.xml", "/feeds/corpus-rdf.rdf")

_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def corpus_dir() -> Path | None:
    """The corpus root (holding ``articles/``), from ``$NEWSWIRE_CORPUS`` or ``../shared/corpus``."""
    env = os.environ.get("NEWSWIRE_CORPUS")
    candidate = Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"
    return candidate if (candidate / "articles" / "manifest.jsonl").is_file() else None


def require_corpus() -> Path:
    """The corpus root, or skip the calling test with a reason saying where it was looked for."""
    import pytest

    found = corpus_dir()
    if found is None:
        where = os.environ.get("NEWSWIRE_CORPUS") or str(REPO_ROOT.parent / "shared" / "corpus")
        pytest.skip(f"corpus not found at {where} (set $NEWSWIRE_CORPUS to the folder holding articles/)")
    return found


@dataclass(frozen=True)
class CorpusPage:
    id: str
    lang: str | None
    title: str
    truth: str  # the expected main text (UTF-8), from truth/<id>.txt
    charset: str | None  # as the page declares it; also what the server sends
    source: str  # corpus source repository
    original_url: str | None  # where the page lived on the web, when the manifest knows
    body: bytes = field(repr=False)  # the page's original bytes, as served

    @property
    def path(self) -> str:
        return f"/a/{self.id}.html"

    @property
    def content_type(self) -> str:
        return f"text/html; charset={self.charset}" if self.charset else "text/html"


def select_pages(
    corpus: Path,
    n: int,
    *,
    seed: int = 0,
    langs: Sequence[str] | None = DEFAULT_LANGS,
    max_bytes: int = MAX_PAGE_BYTES,
) -> list[CorpusPage]:
    """``n`` article pages that have truth files, languages taken in turn from ``langs``.

    ``langs=None`` takes every language the corpus has, most frequent first. Synthetic unit-test pages
    and list pages are left out. The choice depends only on the corpus, ``n``, ``seed`` and ``langs``.
    """
    articles = corpus / "articles"
    by_lang: dict[str, list[dict[str, str]]] = {}
    with (articles / "manifest.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if not row.get("truth") or not row.get("lang") or row.get("page_type") in ("synthetic", "list"):
                continue
            by_lang.setdefault(row["lang"], []).append(row)
    order = list(langs) if langs is not None else sorted(by_lang, key=lambda k: (-len(by_lang[k]), k))
    rng = random.Random(seed)
    queues: dict[str, list[dict[str, str]]] = {}
    for lang in order:
        rows = sorted(by_lang.get(lang, []), key=lambda r: r["id"])
        rng.shuffle(rows)
        queues[lang] = rows
    chosen: list[CorpusPage] = []
    while len(chosen) < n and any(queues.values()):
        for lang in order:
            if len(chosen) >= n:
                break
            while queues[lang]:
                page = _load(articles, queues[lang].pop(0), max_bytes)
                if page is not None:
                    chosen.append(page)
                    break
    if len(chosen) < n:
        raise ValueError(f"the corpus has only {len(chosen)} usable pages in {order}, {n} asked")
    return chosen


def _load(articles: Path, row: dict[str, str], max_bytes: int) -> CorpusPage | None:
    body = gzip.decompress((articles / row["file"]).read_bytes())
    if len(body) > max_bytes:
        return None
    truth = (articles / row["truth"]).read_text(encoding="utf-8")
    if not truth.strip():
        return None
    return CorpusPage(
        id=row["id"],
        lang=row.get("lang"),
        title=_clean(row.get("title") or "") or f"Corpus page {row['id']}",
        truth=truth,
        charset=sniff_html_charset(body),
        source=row.get("source", ""),
        original_url=row.get("url"),
        body=body,
    )


def _clean(text: str) -> str:
    return " ".join(_XML_ILLEGAL.sub("", text).split())


def _summary(page: CorpusPage, words: int = 40) -> str:
    parts = _clean(page.truth).split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


@dataclass(frozen=True)
class FeedItem:
    page: CorpusPage
    link: str  # as the feed gives it (may carry utm_ parameters)
    published: datetime


def plan_feeds(pages: Sequence[CorpusPage], base_url: str) -> dict[str, list[FeedItem]]:
    """Which page goes into which feed, under which link (see the module docstring)."""
    plan: dict[str, list[FeedItem]] = {p: [] for p in FEED_PATHS}
    for i, page in enumerate(pages):
        url = base_url + page.path
        when = FEED_EPOCH - timedelta(hours=i)
        primary = FEED_PATHS[i % 3]
        tracked = primary == FEED_PATHS[0] and i % 4 == 1
        plan[primary].append(FeedItem(page, f"{url}?{UTM}" if tracked else url, when))
        if i % 5 == 0:
            plan[FEED_PATHS[(i + 1) % 3]].append(FeedItem(page, f"{url}?{UTM}", when))
    return plan


def render_rss(items: Sequence[FeedItem], base_url: str) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel>',
        "<title>newswire corpus web (RSS 2.0)</title>",
        f"<link>{escape(base_url)}/</link>",
        "<description>Real pages from the shared corpus, served locally for tests.</description>",
    ]
    for it in items:
        out += [
            "<item>",
            f"<title>{escape(it.page.title)}</title>",
            f"<link>{escape(it.link)}</link>",
            f'<guid isPermaLink="false">corpus-rss-{escape(it.page.id)}</guid>',
            f"<pubDate>{format_datetime(it.published)}</pubDate>",
            f"<description>{escape(_summary(it.page))}</description>",
            "</item>",
        ]
    out.append("</channel></rss>\n")
    return "\n".join(out).encode("utf-8")


def render_atom(items: Sequence[FeedItem], base_url: str) -> bytes:
    updated = (items[0].published if items else FEED_EPOCH).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        "<title>newswire corpus web (Atom)</title>",
        f'<link rel="alternate" href={quoteattr(base_url + "/")}/>',
        "<id>tag:newswire.test,2026:corpus-web</id>",
        f"<updated>{updated}</updated>",
    ]
    for it in items:
        when = it.published.strftime("%Y-%m-%dT%H:%M:%SZ")
        lang = f" xml:lang={quoteattr(it.page.lang)}" if it.page.lang else ""
        out += [
            f"<entry{lang}>",
            f"<title>{escape(it.page.title)}</title>",
            f'<link rel="alternate" type="text/html" href={quoteattr(it.link)}/>',
            f"<id>tag:newswire.test,2026:corpus/{escape(it.page.id)}</id>",
            f"<published>{when}</published><updated>{when}</updated>",
            f"<summary>{escape(_summary(it.page))}</summary>",
            "</entry>",
        ]
    out.append("</feed>\n")
    return "\n".join(out).encode("utf-8")


def render_rdf(items: Sequence[FeedItem], base_url: str) -> bytes:
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        (
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"'
            ' xmlns:dc="http://purl.org/dc/elements/1.1/">'
        ),
        f"<channel rdf:about={quoteattr(base_url + FEED_PATHS[2])}>",
        "<title>newswire corpus web (RSS 1.0)</title>",
        f"<link>{escape(base_url)}/</link>",
        "<description>Real pages from the shared corpus, served locally for tests.</description>",
        "<items><rdf:Seq>",
        *(f"<rdf:li rdf:resource={quoteattr(it.link)}/>" for it in items),
        "</rdf:Seq></items>",
        "</channel>",
    ]
    for it in items:
        out += [
            f"<item rdf:about={quoteattr(it.link)}>",
            f"<title>{escape(it.page.title)}</title>",
            f"<link>{escape(it.link)}</link>",
            f"<description>{escape(_summary(it.page))}</description>",
            f"<dc:date>{it.published.strftime('%Y-%m-%dT%H:%M:%SZ')}</dc:date>",
            *([f"<dc:language>{escape(it.page.lang)}</dc:language>"] if it.page.lang else []),
            "</item>",
        ]
    out.append("</rdf:RDF>\n")
    return "\n".join(out).encode("utf-8")


_RENDER = {
    FEED_PATHS[0]: (render_rss, "application/rss+xml"),
    FEED_PATHS[1]: (render_atom, "application/atom+xml"),
    FEED_PATHS[2]: (render_rdf, "application/rdf+xml"),
}


@dataclass
class CorpusWeb:
    """A running corpus web: what a test needs to drive the pipeline and check its output."""

    server: RunningServer
    pages: list[CorpusPage]
    plan: dict[str, list[FeedItem]]  # feed path -> its items

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def feed_urls(self) -> list[str]:
        return [self.server.url(p) for p in FEED_PATHS]

    def url_of(self, page: CorpusPage) -> str:
        """The page's URL without tracking parameters (what canonicalisation should give)."""
        return self.server.url(page.path)

    @property
    def page_urls(self) -> dict[str, CorpusPage]:
        return {self.url_of(p): p for p in self.pages}

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.pages]

    @property
    def truth_by_url(self) -> dict[str, str]:
        return {self.url_of(p): p.truth for p in self.pages}

    @property
    def links_by_feed(self) -> dict[str, list[str]]:
        """Feed URL -> the links it gives, in feed order, as written in the feed."""
        return {self.server.url(path): [it.link for it in items] for path, items in self.plan.items()}

    @property
    def shared_ids(self) -> set[str]:
        """Pages linked by more than one feed."""
        seen: dict[str, int] = {}
        for items in self.plan.values():
            for it in items:
                seen[it.page.id] = seen.get(it.page.id, 0) + 1
        return {pid for pid, count in seen.items() if count > 1}

    @property
    def tracked_ids(self) -> set[str]:
        """Pages linked at least once with utm_ parameters."""
        return {it.page.id for items in self.plan.values() for it in items if "utm_" in it.link}

    @property
    def entry_count(self) -> int:
        return sum(len(items) for items in self.plan.values())

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_corpus_web(
    n: int = 12,
    *,
    corpus: Path | None = None,
    seed: int = 0,
    langs: Sequence[str] | None = DEFAULT_LANGS,
    host: str = "127.0.0.1",
    port: int = 0,
    delay: float = 0.0,
) -> CorpusWeb:
    """Serve ``n`` corpus pages and three feeds linking them; raises FileNotFoundError without a corpus."""
    root = corpus or corpus_dir()
    if root is None:
        raise FileNotFoundError("corpus not found (set $NEWSWIRE_CORPUS or put it at ../shared/corpus)")
    pages = select_pages(root, n, seed=seed, langs=langs)
    server = start_server(None, host, port, delay=delay)
    try:
        for page in pages:
            server.add_route(page.path, page.body, content_type=page.content_type)
        plan = plan_feeds(pages, server.base_url)
        for path, items in plan.items():
            render, ctype = _RENDER[path]
            server.add_route(path, render(items, server.base_url), content_type=ctype)
    except BaseException:
        server.stop()
        raise
    return CorpusWeb(server, pages, plan)
