"""Feed-list files: OPML (what feed readers import and export) or plain text, one URL per line."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element, ElementTree, SubElement, indent

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from newswire.records import FeedSource


class FeedListError(ValueError):
    """A feed list that cannot be read; the message names the file (and line) and what is wrong."""


def _is_feed_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def read_feed_list(path: Path) -> list[FeedSource]:
    """The feeds of an OPML or plain-text file, first occurrence of each URL kept, in file order."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FeedListError(f"{path}: no such file") from None
    except OSError as exc:
        raise FeedListError(f"{path}: cannot read: {exc.strerror or exc}") from None
    head = data.lstrip()[:200].lower()
    feeds = _read_opml(path, data) if head.startswith((b"<?xml", b"<opml", b"<!--")) else _read_text(path, data)
    unique: dict[str, FeedSource] = {}
    for feed in feeds:
        unique.setdefault(feed.url, feed)
    if not unique:
        raise FeedListError(f"{path}: lists no feeds")
    return list(unique.values())


def _read_text(path: Path, data: bytes) -> list[FeedSource]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedListError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    feeds = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") or " #" in raw else raw.strip()
        if not line:
            continue
        if not _is_feed_url(line):
            raise FeedListError(f"{path}:{number}: not an http(s) URL: {line[:80]!r}")
        feeds.append(FeedSource(url=line))
    return feeds


def _read_opml(path: Path, data: bytes) -> list[FeedSource]:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise FeedListError(f"{path}: refused unsafe XML ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        line, column = exc.position
        raise FeedListError(f"{path}:{line}:{column}: not well-formed XML") from None
    if root.tag.lower() != "opml":
        raise FeedListError(f"{path}: root element is <{root.tag}>, expected <opml>")
    feeds = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue  # a folder, or a link that is not a feed
        if not _is_feed_url(url):
            raise FeedListError(f"{path}: outline {outline.get('text') or outline.get('title')!r}: not an http(s) feed URL: {url[:80]!r}")
        title = (outline.get("title") or outline.get("text") or "").strip() or None
        feeds.append(FeedSource(url=url, title=title))
    return feeds


def write_opml(feeds: list[FeedSource], path: Path, title: str = "newswire feeds") -> None:
    """Export as OPML 2.0, readable by any feed reader."""
    root = Element("opml", version="2.0")
    head = SubElement(root, "head")
    SubElement(head, "title").text = title
    body = SubElement(root, "body")
    for feed in feeds:
        name = feed.title or feed.url
        SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=feed.url)
    indent(root)
    ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
