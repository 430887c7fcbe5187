"""JSON Feed 1.0 / 1.1 (https://jsonfeed.org) to :class:`ParsedFeed` (feedparser 6 cannot read it)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from newswire.processors.feedcommon import (
    FeedParseError,
    absolute_http_link,
    as_utc,
    dedupe,
    language_code,
    scrub_surrogates,
)
from newswire.processors.html_text import collapse, html_to_text, plain_to_text
from newswire.records import Entry, ParsedFeed

__all__ = ["looks_like_json", "parse_json_feed"]

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def looks_like_json(body: bytes, content_type: str | None) -> bool:
    """A JSON media type (``application/feed+json``, ``application/json``) or a leading ``{``."""
    if content_type and "json" in content_type.split(";", 1)[0].lower():
        return True
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """Parse a JSON Feed document; relative item URLs resolve against ``url``."""
    try:
        text = body.decode(json.detect_encoding(body), "replace")
        document = json.loads(text)
        if _SURROGATE_ESCAPE.search(text):  # rare: walk the document only then
            document = scrub_surrogates(document)
    except (ValueError, RecursionError) as exc:
        raise FeedParseError("invalid-json", f"not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise FeedParseError("not-a-feed", "JSON document is not an object")
    version = document.get("version")
    if not isinstance(version, str) or "jsonfeed.org/version/" not in version:
        raise FeedParseError("not-a-feed", "JSON document has no JSON Feed version")
    items = document.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise FeedParseError("not-a-feed", "JSON Feed 'items' is not a list")
    feed_authors = _authors(document)
    feed_language = language_code(document.get("language"))  # JSON Feed 1.1
    entries = [_entry(item, url, feed_authors, feed_language) for item in items if isinstance(item, dict)]
    number = version.rstrip("/").rsplit("/", 1)[-1].replace(".", "")
    return ParsedFeed(
        title=_plain(document.get("title")),
        entries=entries,
        format=f"json{number}0" if len(number) == 1 else f"json{number}",
    )


def _entry(item: dict[str, Any], base: str, feed_authors: tuple[str, ...], feed_language: str | None) -> Entry:
    ident = item.get("id")
    guid = str(ident) if isinstance(ident, (str, int)) and not isinstance(ident, bool) else None
    link = absolute_http_link(item.get("url"), base) or absolute_http_link(item.get("external_url"), base)
    content: str | None = None
    if isinstance(item.get("content_html"), str):
        content = html_to_text(item["content_html"], paragraphs=True)
    if not content and isinstance(item.get("content_text"), str):
        content = plain_to_text(item["content_text"], paragraphs=True)
    published = _date(item.get("date_published")) or _date(item.get("date_modified"))
    return Entry(
        link=link,
        guid=guid,
        title=_plain(item.get("title")),
        summary=_plain(item.get("summary")),
        content=content or None,
        # JSON Feed 1.1: items without authors are by the feed's authors.
        authors=_authors(item) or feed_authors,
        published=published,
        # JSON Feed 1.1: an item's "language", else the feed's
        language=language_code(item.get("language")) or feed_language,
    )


def _plain(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return collapse(value) or None


def _authors(obj: dict[str, Any]) -> tuple[str, ...]:
    found: list[Any] = []
    if isinstance(obj.get("authors"), list):  # 1.1
        found.extend(obj["authors"])
    if isinstance(obj.get("author"), dict):  # 1.0, deprecated in 1.1
        found.append(obj["author"])
    names = [collapse(a["name"]) for a in found if isinstance(a, dict) and isinstance(a.get("name"), str)]
    unique: tuple[str, ...] = dedupe(names)
    return unique


def _date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:  # RFC 822 dates, seen in feeds converted from RSS
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    utc: datetime = as_utc(moment)
    return utc
