"""What the XML and JSON feed parsers share: the error type, link and date clean-up."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

__all__ = ["FeedParseError", "absolute_http_link", "as_utc", "dedupe"]


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
