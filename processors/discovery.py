"""Feed discovery: given a site's HTML page instead of a feed, the feed URLs worth trying, best first.

1. ``<link rel="alternate" type="...">`` in the page (RSS, Atom, RDF, JSON Feed types), in document
   order, except that comment feeds ("Comments Feed", ``/comments/feed``) go last: a blog's page
   usually lists its main feed first and its comments feed after.
2. Common paths where sites keep their feeds (:data:`COMMON_PATHS`), relative to the site's root.

Only http(s) URLs are returned (a ``file:``, ``data:`` or ``javascript:`` href is dropped), each once.
This module only reads bytes; fetching the candidates and checking which one parses as a feed is the
caller's job (the live run and ``newswire feeds discover``), through the same guarded fetcher as every
other fetch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from newswire.processors.feedcommon import absolute_http_link

__all__ = ["COMMON_PATHS", "FEED_TYPES", "FeedLink", "candidates", "common_paths", "feed_links", "looks_like_html"]

#: Media types a ``<link rel="alternate">`` may carry for a feed, and the format each names.
FEED_TYPES: dict[str, str] = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/rdf+xml": "rdf",
    "application/feed+json": "json",
    "application/json": "json",
    "application/x.atom+xml": "atom",
    "application/x-atom+xml": "atom",
    "text/xml": "xml",
    "application/xml": "xml",
}

#: Paths tried on the site's root when the page names no feed, most common first.
COMMON_PATHS: tuple[str, ...] = (
    "/feed",
    "/rss",
    "/feed.xml",
    "/rss.xml",
    "/atom.xml",
    "/index.xml",
    "/feed.json",
    "/feeds/posts/default",
    "/?feed=rss2",
)

# <link> tags live in <head>; a page hiding them after this many bytes is not worth parsing further.
_SCAN_LIMIT = 512 * 1024
_COMMENTS = re.compile(r"comment", re.IGNORECASE)
_HTML_START = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:\s|<\?[^>]*>|<!--.*?-->)*+<(?:!doctype\s+html|html|head)[\s>]",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class FeedLink:
    url: str
    kind: str  # rss, atom, rdf, json, xml (a generic XML type), or "guess" for a common path
    title: str | None = None
    source: str = "link"  # "link" (<link rel=alternate>) or "path" (a common path)


def looks_like_html(body: bytes, content_type: str | None = None) -> bool:
    """An HTML document: declared ``text/html``/XHTML, or starting like one."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared in ("text/html", "application/xhtml+xml"):
        return True
    return bool(_HTML_START.match(body, 0, 4096))


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str, str | None]] = []  # (href, type, title)
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"].strip()
        elif tag == "link":
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").split(";", 1)[0].strip().lower()
            if "alternate" in rels and kind in FEED_TYPES and values.get("href", "").strip():
                self.links.append((values["href"].strip(), kind, values.get("title", "").strip() or None))
        elif tag == "body" and self.links:
            self.done = True  # the feeds of a page are named in its head

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def _decode(body: bytes, content_type: str | None) -> str:
    charset = None
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    # Only ASCII matters for tags and URLs; a wrong charset costs at most a garbled title.
    try:
        return body[:_SCAN_LIMIT].decode(charset or "utf-8", "replace")
    except LookupError:
        return body[:_SCAN_LIMIT].decode("utf-8", "replace")


def feed_links(body: bytes, page_url: str, content_type: str | None = None) -> list[FeedLink]:
    """The feeds a page names with ``<link rel="alternate">``, absolute, main feeds before comment feeds."""
    parser = _LinkParser()
    try:
        parser.feed(_decode(body, content_type))
        parser.close()
    except (AssertionError, ValueError):  # html.parser gives up on some malformed markup
        pass
    base = page_url
    if parser.base:
        based = absolute_http_link(parser.base, page_url)
        if based:
            base = based
    found: list[FeedLink] = []
    seen: set[str] = set()
    for href, kind, title in parser.links:
        url = absolute_http_link(href, base)
        if url is None or url in seen:
            continue
        seen.add(url)
        found.append(FeedLink(url=url, kind=FEED_TYPES[kind], title=title, source="link"))
    # Stable sort: document order kept within each group.
    return sorted(found, key=lambda f: bool(_COMMENTS.search(f"{f.title or ''} {f.url}")))


def common_paths(page_url: str) -> list[FeedLink]:
    """:data:`COMMON_PATHS` on the page's site (scheme, host and port of ``page_url``)."""
    parts = urlsplit(page_url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return []
    root = f"{parts.scheme}://{parts.netloc}/"
    return [FeedLink(url=urljoin(root, path), kind="guess", source="path") for path in COMMON_PATHS]


def candidates(body: bytes, page_url: str, content_type: str | None = None) -> list[FeedLink]:
    """Everything worth trying, best first: the page's own feed links, then the common paths."""
    found = feed_links(body, page_url, content_type)
    seen = {f.url for f in found}
    seen.add(page_url)
    return found + [f for f in common_paths(page_url) if f.url not in seen]
