"""Feed documents (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed 1.0/1.1) to :class:`ParsedFeed`.

XML goes through feedparser, given the bytes and the declared Content-Type so its encoding rules
(HTTP charset, XML declaration, BOM, sniffing) apply; ill-formed ("bozo") feeds still give their
entries. JSON Feed goes to :mod:`newswire.processors.jsonfeed`. Every text field comes out as plain
text; entry content keeps its paragraph breaks as ``"\\n\\n"``.
"""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from typing import Any

import feedparser

from newswire.processors.feedcommon import (
    FeedParseError,
    absolute_http_link,
    dedupe,
    language_code,
    replace_impossible_char_refs,
)
from newswire.processors.html_text import collapse, html_to_text, plain_to_text
from newswire.processors.jsonfeed import looks_like_json, parse_json_feed
from newswire.processors.xmlguard import EntityExpansionError, check_entity_expansion
from newswire.records import Entry, ParsedFeed

__all__ = ["FeedParseError", "parse_feed"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
# An HTML page where a feed was expected: the first element (after declaration, comments and
# doctype) is <html>. Checked up front so a large page does not go through the feed parser.
_HTML_PAGE = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:\s|<\?[^>]*>|<!--.*?-->|<!doctype[^>]*>)*+<html[\s>]", re.IGNORECASE | re.DOTALL
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SY_PERIODS = {"hourly": 3600, "daily": 86400, "weekly": 604800, "monthly": 2592000, "yearly": 31536000}


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed document fetched from ``url`` (relative links resolve against it).

    Raises :class:`FeedParseError` (reason ``empty``, ``not-a-feed``, ``xml-entities``,
    ``invalid-json`` or ``parser-error``) when the document yields no feed at all; a feed with no
    entries is a feed.
    """
    if not body.strip():
        raise FeedParseError("empty", "the document is empty")
    if looks_like_json(body, content_type):
        parsed: ParsedFeed = parse_json_feed(body, url)
        return parsed
    if body.startswith(b"%PDF-"):
        raise FeedParseError("not-a-feed", "a PDF document, not a feed")
    if _HTML_PAGE.match(body, 0, 4096):
        raise FeedParseError("not-a-feed", "an HTML page, not a feed")
    try:
        check_entity_expansion(body, content_type)
    except EntityExpansionError as exc:
        raise FeedParseError("xml-entities", str(exc)) from None
    # No declared type (a file, a WARC record without headers): application/xml means "trust the
    # BOM and XML declaration, else UTF-8" (RFC 7303), which is what a file on disk needs.
    # No Content-Location: given a base URI feedparser runs urljoin on every element (a third of
    # its time); links are resolved against ``url`` afterwards instead, xml:base still applies.
    headers = {"content-type": content_type or "application/xml"}
    try:
        # A stream, never bytes: feedparser tries to open() bytes as a file name first, so a body
        # reading "/etc/passwd" would be replaced by that file. No sanitising or URI rewriting inside
        # content: the HTML becomes plain text anyway.
        result = feedparser.parse(
            io.BytesIO(replace_impossible_char_refs(body)), response_headers=headers, sanitize_html=False, resolve_relative_uris=False
        )
    except Exception as exc:  # noqa: BLE001 -- feedparser promises never to raise; a feed must not crash the run if it does
        raise FeedParseError("parser-error", f"{type(exc).__name__}: {str(exc)[:200]}") from None
    version: str = result.get("version") or ""
    entries_raw: list[Any] = result.get("entries") or []
    if not version and not entries_raw:
        problem = result.get("bozo_exception")
        detail = f" ({type(problem).__name__}: {str(problem)[:200]})" if problem else ""
        raise FeedParseError("not-a-feed", f"no RSS, Atom or JSON feed found{detail}")
    feed: dict[str, Any] = result.get("feed") or {}
    # Atom (RFC 4287 4.2.1): an entry without authors is by the feed's authors.
    atom = version.startswith("atom")
    inherited = _authors(feed, structured=True) if atom else ()
    # RSS 2.0 <language>, RSS 1.0 channel dc:language, Atom xml:lang on <feed>
    feed_language = language_code(feed.get("language"))
    bozo = None
    if result.get("bozo"):
        problem = result.get("bozo_exception")
        bozo = f"{type(problem).__name__}: {str(problem)[:200]}" if problem else "not well-formed"
    return ParsedFeed(
        title=_text(feed.get("title_detail"), feed.get("title")),
        entries=[_entry(raw, url, inherited, atom, feed_language) for raw in entries_raw],
        format=version,
        bozo=bozo,
        ttl_seconds=_ttl_seconds(feed),
    )


def _entry(
    raw: dict[str, Any], base: str, inherited: tuple[str, ...], atom: bool, feed_language: str | None
) -> Entry:
    """The entry as plain text. Entries with nothing usable (no link) are kept: the pipeline
    dead-letters them with a reason instead of losing them silently."""
    content_raw, content = _best_content(raw.get("content") or [])
    summary: str | None = None
    # feedparser copies Atom content into ``summary`` when there is none; that is not a summary.
    if content_raw is None or raw.get("summary") != content_raw:
        summary = _text(raw.get("summary_detail"), raw.get("summary"))
    guid = raw.get("id")
    return Entry(
        link=absolute_http_link(raw.get("link"), base),
        guid=(guid.strip() or None) if isinstance(guid, str) else None,
        title=_text(raw.get("title_detail"), raw.get("title")),
        summary=summary,
        content=content,
        authors=_authors(raw, structured=atom) or inherited,
        published=_when(raw.get("published_parsed")) or _when(raw.get("updated_parsed")),
        language=_entry_language(raw) or feed_language,
    )


def _entry_language(raw: dict[str, Any]) -> str | None:
    """The language an entry declares: RSS 1.0/2.0 ``dc:language`` on the item, else the ``xml:lang``
    in force on its content, summary or title (Atom; feedparser gives each text construct the
    language inherited from its ancestors)."""
    declared: list[Any] = [raw.get("language")]
    declared += [item.get("language") for item in raw.get("content") or [] if isinstance(item, dict)]
    for key in ("summary_detail", "title_detail"):
        detail = raw.get(key)
        if isinstance(detail, dict):
            declared.append(detail.get("language"))
    for value in declared:
        code = language_code(value)
        if code is not None:
            return code
    return None


def _best_content(items: list[Any]) -> tuple[str | None, str | None]:
    """The raw value and text of the longest content block (feeds may carry several)."""
    best_raw: str | None = None
    best: str | None = None
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            continue
        text = _convert(item["value"], item.get("type"), paragraphs=True)
        if text and (best is None or len(text) > len(best)):
            best_raw, best = item["value"], text
    return best_raw, best


def _text(detail: Any, fallback: Any, *, paragraphs: bool = False) -> str | None:
    if isinstance(detail, dict) and isinstance(detail.get("value"), str):
        return _convert(detail["value"], detail.get("type"), paragraphs=paragraphs) or None
    if isinstance(fallback, str):
        return _convert(fallback, "text/html", paragraphs=paragraphs) or None
    return None


def _convert(value: str, kind: Any, *, paragraphs: bool) -> str:
    convert = html_to_text if kind in _HTML_TYPES else plain_to_text
    text: str = convert(value, paragraphs=paragraphs)
    return text


def _authors(obj: dict[str, Any], *, structured: bool) -> tuple[str, ...]:
    """Author names. ``structured`` (Atom) names come from <name> elements and are trusted.

    RSS authors are free text ("desk@bbc.co.uk (News Desk)"); feedparser 6.0.x splits them with an
    e-mail pattern that cuts top-level domains to four letters ("desk@news.example" leaves "ple"),
    so when it found an e-mail address the names come from the raw string instead.
    """
    details = [a for a in obj.get("authors") or [] if isinstance(a, dict)]
    raw = obj.get("author")
    if not structured and isinstance(raw, str) and any("email" in a for a in details):
        names = _names_from_free_text(raw)
    else:
        names = [collapse(a["name"]) for a in details if isinstance(a.get("name"), str)]
        if not names and isinstance(raw, str):
            names = _names_from_free_text(raw)
    unique: tuple[str, ...] = dedupe(names)
    return unique


def _names_from_free_text(raw: str) -> list[str]:
    if not _EMAIL.search(raw):
        return [collapse(raw)]
    in_parens = [collapse(name) for name in re.findall(r"\(([^()]*)\)", raw)]
    if any(in_parens):
        return in_parens
    # "News Desk <desk@example.com>", or a bare address (no name: nothing to report)
    return [collapse(re.sub(r"[<>()\[\],;]", " ", _EMAIL.sub(" ", raw)))]


def _when(parsed: Any) -> datetime | None:
    """feedparser's ``*_parsed`` values are struct_time already normalised to UTC."""
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _ttl_seconds(feed: dict[str, Any]) -> int | None:
    ttl = _positive_int(feed.get("ttl"))
    if ttl is not None:
        return ttl * 60  # RSS <ttl> is in minutes
    period = _SY_PERIODS.get(str(feed.get("sy_updateperiod", "")).strip().lower())
    if period is None:
        return None
    frequency = _positive_int(feed.get("sy_updatefrequency")) or 1
    return max(1, period // frequency)


def _positive_int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except ValueError:
        return None
    return number if number > 0 else None
