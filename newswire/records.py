"""Records that cross module lines. Plain frozen dataclasses, no behaviour beyond small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FeedSource:
    """A feed as listed in the user's feed file."""

    url: str
    title: str | None = None


@dataclass(frozen=True)
class RedirectHop:
    """One redirect a fetch followed: ``url`` answered ``status`` with ``Location`` ``location``
    (made absolute)."""

    url: str
    status: int
    location: str


@dataclass(frozen=True)
class FetchResult:
    """Outcome of one HTTP fetch (feed or page), whether it succeeded or not.

    ``error`` is a short machine-readable reason (``timeout``, ``blocked-address``, ``too-large``,
    ``http-500``, ``connect``, ``too-many-redirects``, ``bad-scheme`` ...) and ``None`` on success.
    ``status`` is the final HTTP status when a response was received.
    """

    url: str
    final_url: str
    status: int | None
    headers: dict[str, str]
    body: bytes
    fetched_at: datetime
    error: str | None = None
    detail: str | None = None
    redirects: tuple[RedirectHop, ...] = ()  # the hops from ``url`` to ``final_url``, in order

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Entry:
    """One entry of a parsed feed. Text fields are plain text (markup stripped)."""

    link: str | None  # absolute URL as the feed gave it (resolved against the feed URL)
    guid: str | None
    title: str | None
    summary: str | None
    content: str | None  # full content when the feed carries it (content:encoded, atom content)
    authors: tuple[str, ...] = ()
    published: datetime | None = None  # timezone-aware UTC
    # ISO 639-1 code the entry declares (dc:language, xml:lang), else the feed (RSS <language>, Atom
    # xml:lang, JSON Feed "language"); None when neither does
    language: str | None = None


@dataclass(frozen=True)
class ParsedFeed:
    title: str | None
    entries: list[Entry]
    format: str  # "rss20", "atom10", "rss10", "json11", ... ("" when unknown)
    bozo: str | None = None  # parser complaint when the document was not well-formed but still gave entries
    ttl_seconds: int | None = None  # publisher's own hint (ttl, sy:updatePeriod), for scheduling


@dataclass(frozen=True)
class Extraction:
    """What the extractor got out of an article page."""

    text: str
    title: str | None = None
    authors: tuple[str, ...] = ()
    published: datetime | None = None
    language: str | None = None
    site_name: str | None = None


@dataclass(frozen=True)
class TopicTag:
    slug: str
    score: float
    matches: dict[str, int] = field(default_factory=dict)


# -- the state store's records (newswire.connectors.state) -----------------------------------------


@dataclass(frozen=True)
class FeedState:
    url: str
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    entries_seen: int = 0
    page_failures: int = 0
    next_poll_at: datetime | None = None
    # schedule (see newswire.processors.schedule)
    rate_count: float | None = None  # decayed count of new entries
    rate_since: datetime | None = None
    ttl_seconds: int | None = None  # the publisher's ttl / sy:updatePeriod hint
    retry_after_until: datetime | None = None  # a 429/503 asked us to wait until then
    parked_since: datetime | None = None  # parked after repeated failures (None: not parked)
    failing_since: datetime | None = None  # first failure of the current run of failures
    schedule_reason: str | None = None  # what decided next_poll_at
    # health
    last_page_error: str | None = None  # reason of the last article page that could not be used
    discovered_url: str | None = None  # the feed found on the listed page (feed discovery)

    def is_due(self, now: datetime) -> bool:
        return self.next_poll_at is None or self.next_poll_at <= now

    @property
    def parked(self) -> bool:
        return self.parked_since is not None

    def waiting(self, now: datetime) -> bool:
        """A server asked (Retry-After) not to be polled before a time still in the future."""
        return self.retry_after_until is not None and self.retry_after_until > now


@dataclass(frozen=True)
class PublishedRow:
    id: str
    url: str
    feed_url: str | None


@dataclass(frozen=True)
class HealthCounts:
    failing: int
    parked: int
    waiting: int
