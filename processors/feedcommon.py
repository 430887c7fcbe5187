"""What the XML and JSON feed parsers share: the error type, link and date clean-up."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from newswire.processors.html_text import replace_lone_surrogates

__all__ = [
    "FeedParseError",
    "absolute_http_link",
    "as_utc",
    "dedupe",
    "language_code",
    "replace_impossible_char_refs",
    "scrub_surrogates",
]

# Withdrawn ISO 639-1 codes still found in pages and feeds, and what replaced them.
_OLD_CODES = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}
_SUBTAG_SEP = re.compile(r"[-_]")
_TWO_LETTERS = re.compile(r"[a-z]{2}")


_CHAR_REF = re.compile(rb"&#(?:[xX]0*([0-9a-fA-F]+)|0*([0-9]+));")


class FeedParseError(ValueError):
    """The document yields no feed at all.

    ``reason`` is short and machine-readable: ``empty``, ``not-a-feed``, ``xml-entities``,
    ``invalid-json``, ``parser-error``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[FeedParseError], tuple[str, str]]:
        # Picklable, so it can come back from a process-pool worker as itself.
        return (type(self), (self.reason, self.detail))


def absolute_http_link(link: object, base: str) -> str | None:
    """``link`` resolved against ``base`` when it is an http(s) URL with a host, else None.

    Feeds carry ``javascript:``, ``data:``, ``file:`` and ``mailto:`` links; none of them names an
    article page the pipeline may fetch.
    """
    if not isinstance(link, str):
        return None
    link = link.strip()
    if not link:
        return None
    try:
        absolute = urljoin(base, link) if base else link
        parts = urlsplit(absolute)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number in range
    except ValueError:
        return None
    return absolute


def as_utc(moment: datetime) -> datetime:
    """Timezone-aware UTC; a naive time is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def dedupe(items: list[str]) -> tuple[str, ...]:
    """Non-empty items, first occurrence kept, order preserved."""
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return tuple(seen)


def language_code(value: object) -> str | None:
    """The ISO 639-1 code of a declared language tag: its primary subtag, lower-cased, withdrawn codes
    replaced ("en-US", "EN", "de_DE", "iw" -> "en", "en", "de", "he"); None when there is no
    two-letter primary subtag ("", "English", "deu", "x-default").

    What a page's ``<html lang>`` (:func:`newswire.processors.extract.page_language`) and a feed's
    ``<language>``, ``dc:language``, ``xml:lang`` or JSON Feed ``language`` both come down to.
    """
    if not isinstance(value, str):
        return None
    code = _SUBTAG_SEP.split(value.strip(), maxsplit=1)[0].lower()
    if not _TWO_LETTERS.fullmatch(code):
        return None
    return _OLD_CODES.get(code, code)


def _char_ref(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.group(1), match.group(2)
    digits = hex_digits or decimal
    if len(digits) > 7:
        return b"&#xFFFD;"
    value = int(digits, 16 if hex_digits else 10)
    return b"&#xFFFD;" if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF else match.group(0)


def replace_impossible_char_refs(body: bytes) -> bytes:
    """Character references to no character (a UTF-16 surrogate, beyond U+10FFFF) become U+FFFD.

    feedparser's lenient parser turns ``&#xD800;`` into a lone surrogate and then fails to encode it,
    ``&#x110000;`` into an error: one such reference in one title lost the whole feed."""
    if b"&#" not in body:
        return body
    return _CHAR_REF.sub(_char_ref, body)


def scrub_surrogates(value: Any) -> Any:
    """``value`` (parsed JSON) with every lone surrogate in its strings replaced by U+FFFD.

    JSON may escape one (``"\\udfff"``) and Python's json module keeps it; no text with one can be
    encoded as UTF-8, so one such item made every message of the run fail to build."""
    if isinstance(value, str):
        return replace_lone_surrogates(value)
    if isinstance(value, list):
        return [scrub_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {scrub_surrogates(key): scrub_surrogates(item) for key, item in value.items()}
    return value
