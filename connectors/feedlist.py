"""Feed-list files: OPML (as feed readers export it) or plain text, one URL per line.

Plain text::

    # comments and blank lines are ignored
    https://feeds.bbci.co.uk/news/world/rss.xml
    https://www.theguardian.com/world/rss   # a trailing comment after whitespace too

OPML: every ``<outline>`` with an ``xmlUrl`` attribute, at any depth (folders nest), title from
``title`` or else ``text``. Parsed with defusedxml (no entity expansion, no external resources).

Feeds are de-duplicated by canonical URL, first occurrence kept (in file order). Malformed input
raises :class:`FeedListError` naming the file and, where there is one, the line.
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from newswire.processors.canonical import InvalidURL, canonical_url
from newswire.records import FeedSource

__all__ = ["FeedListError", "read_feed_list", "write_opml"]


class FeedListError(ValueError):
    """The feed-list file cannot be used; the message names the file (and line)."""


def read_feed_list(path: Path) -> list[FeedSource]:
    """The feeds listed in an OPML or plain-text file, duplicates removed, in file order."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FeedListError(f"{path}: no such file") from None
    except OSError as exc:
        raise FeedListError(f"{path}: cannot read feed list: {exc.strerror or exc}") from None
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        found = _read_opml(data, path)
        kind = "OPML outline with an xmlUrl"
    else:
        found = _read_plain(data, path)
        kind = "feed URL"
    if not found:
        raise FeedListError(f"{path}: no feeds found (expected at least one {kind})")
    return _dedupe(found)


def write_opml(feeds: list[FeedSource], path: Path, title: str = "newswire feeds") -> None:
    """Write ``feeds`` as an OPML 2.0 file (atomically: a reader never sees half a file)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.title or feed.url, "xmlUrl": feed.url}
        if feed.title:
            attrs["title"] = feed.title
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    payload = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise FeedListError(f"{path}: cannot write OPML: {exc.strerror or exc}") from None


def _check_url(url: str, where: str) -> str:
    try:
        parts = urlsplit(url)
        ok = (
            parts.scheme.lower() in ("http", "https")
            and bool(parts.hostname)
            and not any(c.isspace() for c in url)
        )
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number in range
    except ValueError:
        ok = False
    if not ok:
        raise FeedListError(f"{where}: not an http(s) URL: {url!r}")
    return url


def _read_plain(data: bytes, path: Path) -> list[FeedSource]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise FeedListError(f"{path}:{bad_line}: not UTF-8 text") from None
    feeds: list[FeedSource] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.strip()
        if not content or content.startswith("#"):
            continue
        # A trailing comment needs whitespace before "#": URLs may contain "#" themselves.
        content = content.split(" #", 1)[0].split("\t#", 1)[0].strip()
        feeds.append(FeedSource(url=_check_url(content, f"{path}:{number}")))
    return feeds


class _OutlineCollector:
    """ElementTree parser target that keeps feed outlines with their line numbers."""

    def __init__(self) -> None:
        self.parser: DefusedXMLParser | None = None
        self.root: str | None = None
        self.outlines: list[tuple[int, dict[str, str]]] = []

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        local = tag.rsplit("}", 1)[-1]
        if self.root is None:
            self.root = local
        if local == "outline":
            line = self.parser.parser.CurrentLineNumber if self.parser is not None else 0
            self.outlines.append((line, {key.lower(): value for key, value in attrib.items()}))

    def end(self, tag: str) -> None:
        pass

    def data(self, data: str) -> None:
        pass

    def close(self) -> None:
        pass


def _read_opml(data: bytes, path: Path) -> list[FeedSource]:
    collector = _OutlineCollector()
    # No DTD at all: an OPML file never needs one, and it is where entity tricks live.
    parser = DefusedXMLParser(target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    collector.parser = parser
    try:
        parser.feed(data)
        parser.close()
    except ET.ParseError as exc:
        line, _column = exc.position
        reason = str(exc).split(":", 1)[0]  # expat's message without its own position suffix
        raise FeedListError(f"{path}:{line}: not well-formed XML ({reason})") from None
    except DefusedXmlException as exc:
        raise FeedListError(f"{path}: refused unsafe XML ({type(exc).__name__})") from None
    if collector.root is None or collector.root.lower() != "opml":
        raise FeedListError(f"{path}: not an OPML document (root element <{collector.root}>)")
    feeds: list[FeedSource] = []
    for line, attrs in collector.outlines:
        url = (attrs.get("xmlurl") or "").strip()
        if not url:
            continue  # a folder or a plain link outline
        title = (attrs.get("title") or attrs.get("text") or "").strip() or None
        if title == url:  # what write_opml puts in the required "text" of an untitled feed
            title = None
        feeds.append(FeedSource(url=_check_url(url, f"{path}:{line}"), title=title))
    return feeds


def _dedupe(feeds: list[FeedSource]) -> list[FeedSource]:
    """First occurrence wins; it takes a later duplicate's title when it has none itself."""
    kept: dict[str, FeedSource] = {}
    for feed in feeds:
        try:
            key = canonical_url(feed.url)
        except InvalidURL:  # cannot happen after _check_url, but a key is all we need here
            key = feed.url
        first = kept.get(key)
        if first is None:
            kept[key] = feed
        elif first.title is None and feed.title:
            kept[key] = FeedSource(url=first.url, title=feed.title)
    return list(kept.values())
