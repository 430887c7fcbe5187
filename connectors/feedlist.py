"""Feed-list files: OPML (as feed readers export it) or plain text, one URL per line.

Plain text::

    # comments and blank lines are ignored
    https://feeds.bbci.co.uk/news/world/rss.xml
    https://www.theguardian.com/world/rss   # a trailing comment after whitespace too

OPML: every ``<outline>`` with an ``xmlUrl`` attribute, at any depth (folders nest), title from
``title`` or else ``text``. Parsed with defusedxml (no entity expansion, no external resources).

Feeds are de-duplicated by canonical URL, first occurrence kept (in file order). Malformed input
raises :class:`FeedListError` naming the file and, where there is one, the line.

Adding feeds to a list keeps it in its own format and leaves what is there untouched:
:func:`append_opml` inserts new ``<outline>`` elements at the end of the OPML ``<body>`` (head,
folders, attributes and comments kept byte for byte), :func:`append_plain` appends lines. Every
write replaces the file atomically.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from newswire.processors.canonical import InvalidURL, canonical_url
from newswire.records import FeedSource

__all__ = ["FeedListError", "append_opml", "append_plain", "read_feed_list", "write_opml"]


class FeedListError(ValueError):
    """The feed-list file cannot be used; the message names the file (and line)."""


def read_feed_list(path: Path) -> list[FeedSource]:
    """The feeds listed in an OPML or plain-text file, duplicates removed, in file order."""
    data = _read_bytes(path)
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
    _replace_file(path, payload, "cannot write OPML")


def append_opml(feeds: list[FeedSource], path: Path) -> list[FeedSource]:
    """Add ``feeds`` to the OPML file ``path`` as new outlines at the end of its ``<body>``.

    The rest of the file is kept byte for byte (XML declaration and encoding, head, folders,
    attributes, comments, order); the new outlines follow the indentation and line endings of the
    file. Feeds the file already lists (by canonical URL) are skipped. The file is replaced
    atomically. Returns the feeds added.
    """
    data = _read_bytes(path)
    listed = _read_opml(data, path)  # the same checks as reading the list: a bad file stays untouched
    have = {_key(feed.url) for feed in listed}
    added: list[FeedSource] = []
    for feed in _dedupe(feeds):
        if _key(feed.url) not in have:
            have.add(_key(feed.url))
            added.append(feed)
    if not added:
        return []
    encoding = _declared_encoding(data, path)
    locator = _BodyLocator()
    _parse(data, path, locator)
    if locator.body_start is None or locator.body_end is None:
        raise FeedListError(f"{path}: no <body> element in the OPML document to add feeds to")
    start, end = locator.body_start, locator.body_end
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    qname = data[start + 1 :].split(b">", 1)[0].split(b"/", 1)[0].split()[0]  # "body", or "o:body"
    outlines = [_outline(feed).encode(encoding, "xmlcharrefreplace") for feed in added]
    if re.match(rb"</" + re.escape(qname) + rb"[ \t\r\n]*>", data[end:]):
        # <body>...</body>: insert after the last thing in the body, before the whitespace that
        # indents the end tag, each outline on a line of its own indented as the last child is.
        at = len(data[:end].rstrip(b" \t\r\n"))
        if locator.last_child is not None:
            lead = data[: locator.last_child]
            gap = lead[len(lead.rstrip(b" \t\r\n")) :]
            sep = newline + _indent(lead) if b"\n" in gap else gap
        elif b"\n" in data[at:end]:
            sep = newline + _child_indent(data[:end])
        else:
            sep = b""
        payload = data[:at] + b"".join(sep + outline for outline in outlines) + data[at:]
    else:
        # <body/>: make it <body>(outlines)</body>, indented from the body's own indentation.
        tag = data[start:end]
        if not tag.endswith(b"/>"):
            raise FeedListError(f"{path}: cannot find the end of <body> in the OPML document")
        own = _indent(data[:start]) if data[:start].rstrip(b" \t").endswith(b"\n") else None
        sep = b"" if own is None else newline + _child_indent(data[:start])
        close = b"" if own is None else newline + own
        inner = b"".join(sep + outline for outline in outlines)
        payload = data[:start] + tag[:-2].rstrip() + b">" + inner + close + b"</" + qname + b">" + data[end:]
    if len(_read_opml(payload, path)) != len(listed) + len(added):  # cannot happen; never write it if so
        raise FeedListError(f"{path}: could not add feeds to this OPML document; it was left unchanged")
    _replace_file(path, payload, "cannot write OPML")
    return added


def append_plain(feeds: list[FeedSource], path: Path) -> list[FeedSource]:
    """Add the URLs of ``feeds`` to the plain-text list ``path`` (created if missing), one a line.

    The existing text is kept byte for byte (comments, blank lines, BOM, line endings, which the new
    lines follow); feeds already listed are skipped. The file is replaced atomically. Returns the
    feeds added.
    """
    data = b"" if not path.exists() else _read_bytes(path)
    have = {_key(feed.url) for feed in _read_plain(data, path)}
    added: list[FeedSource] = []
    for feed in feeds:
        if _key(feed.url) not in have:
            have.add(_key(feed.url))
            added.append(feed)
    if not added:
        return []
    newline = b"\r\n" if b"\r\n" in data else b"\n"
    if data and not data.endswith(b"\n"):
        data += newline
    payload = data + b"".join(feed.url.encode("utf-8") + newline for feed in added)
    _replace_file(path, payload, "cannot write feed list")
    return added


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FeedListError(f"{path}: no such file") from None
    except OSError as exc:
        raise FeedListError(f"{path}: cannot read feed list: {exc.strerror or exc}") from None


def _replace_file(path: Path, payload: bytes, failure: str) -> None:
    """Write ``payload`` to ``path`` through a temporary file renamed over it: a reader sees the old
    file or the new one, never half of one. An existing file keeps its permissions (a new one gets
    what the umask allows, as with open()), and a symbolic link stays one (its target is replaced)."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    directory = target.parent if str(target.parent) else Path(".")
    try:
        if target.exists():
            mode = stat.S_IMODE(target.stat().st_mode)
        else:
            umask = os.umask(0o022)
            os.umask(umask)
            mode = 0o666 & ~umask
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise FeedListError(f"{path}: {failure}: {exc.strerror or exc}") from None


def _declared_encoding(data: bytes, path: Path) -> str:
    """The codec of an OPML document: its XML declaration's, else UTF-8 (the XML default)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    found = re.match(rb"<\?xml[^>]*?\sencoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._-]*)[\"']", data.lstrip())
    name = found.group(1).decode("ascii") if found else "utf-8"
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise FeedListError(f"{path}: unknown encoding {name!r} in the XML declaration") from None
    if codec.startswith(("utf-16", "utf-32")):
        raise FeedListError(f"{path}: cannot add feeds to a {name} document; save it as UTF-8")
    return codec


def _indent(before: bytes) -> bytes:
    """The whitespace between the last line break of ``before`` and its end."""
    line = before[before.rfind(b"\n") + 1 :]
    return line[len(line.rstrip(b" \t")) :]


def _child_indent(before: bytes) -> bytes:
    own = _indent(before)
    return own + (b"\t" if b"\t" in own else b"  ")


def _outline(feed: FeedSource) -> str:
    attrs = [("type", "rss"), ("text", feed.title or feed.url)]
    if feed.title:
        attrs.append(("title", feed.title))
    attrs.append(("xmlUrl", feed.url))
    return "<outline " + " ".join(f'{name}="{value.translate(_ATTR_ESCAPES)}"' for name, value in attrs) + "/>"


# What a double-quoted attribute value cannot hold as it is (whitespace too: a parser would normalise it).
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


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


class _BodyLocator:
    """ElementTree parser target that finds the byte offsets of the OPML ``<body>``: where its start
    tag begins, where its end tag begins (for ``<body/>``: where the tag ends), and where its last
    child element begins."""

    def __init__(self) -> None:
        self.parser: DefusedXMLParser | None = None
        self.depth = 0
        self.in_body = False
        self.body_start: int | None = None
        self.body_end: int | None = None
        self.last_child: int | None = None

    def _offset(self) -> int:
        return self.parser.parser.CurrentByteIndex if self.parser is not None else 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 2 and self.body_start is None and tag.rsplit("}", 1)[-1] == "body":
            self.in_body = True
            self.body_start = self._offset()
        elif self.depth == 3 and self.in_body:
            self.last_child = self._offset()

    def end(self, tag: str) -> None:
        if self.depth == 2 and self.in_body:
            self.in_body = False
            self.body_end = self._offset()
        self.depth -= 1

    def data(self, data: str) -> None:
        pass

    def close(self) -> None:
        pass


def _parse(data: bytes, path: Path, target: _OutlineCollector | _BodyLocator) -> None:
    # No DTD at all: an OPML file never needs one, and it is where entity tricks live.
    parser = DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    target.parser = parser
    try:
        parser.feed(data)
        parser.close()
    except ET.ParseError as exc:
        line, _column = exc.position
        reason = str(exc).split(":", 1)[0]  # expat's message without its own position suffix
        raise FeedListError(f"{path}:{line}: not well-formed XML ({reason})") from None
    except DefusedXmlException as exc:
        raise FeedListError(f"{path}: refused unsafe XML ({type(exc).__name__})") from None


def _read_opml(data: bytes, path: Path) -> list[FeedSource]:
    collector = _OutlineCollector()
    _parse(data, path, collector)
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
        key = _key(feed.url)
        first = kept.get(key)
        if first is None:
            kept[key] = feed
        elif first.title is None and feed.title:
            kept[key] = FeedSource(url=first.url, title=feed.title)
    return list(kept.values())


def _key(url: str) -> str:
    """What makes two listed feeds the same feed: their canonical URL."""
    try:
        return canonical_url(url)
    except InvalidURL:  # cannot happen after _check_url, but a key is all we need here
        return url
