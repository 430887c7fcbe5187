"""Build the v1 article message from what the earlier stages produced. Pure: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from newswire.contract import ArticleMessage, FeedRef, Pipeline, Topic, utc_iso
from newswire.processors.canonical import hash_normalised, normalise_text
from newswire.records import Entry, Extraction, FeedSource, TopicTag


@dataclass(frozen=True)
class ArticleInput:
    """Everything known about one article before tagging."""

    id: str
    url: str
    original_url: str
    feed: FeedSource | None
    entry: Entry | None
    extraction: Extraction | None  # None when the page could not be had or gave no text
    fetched_at: datetime  # of the page, or of the feed when the text comes from the feed

    @property
    def text_source(self) -> str:
        return "page" if self.extraction is not None else "feed"

    @property
    def title(self) -> str:
        if self.extraction is not None and self.extraction.title:
            return self.extraction.title
        if self.entry is not None and self.entry.title:
            return self.entry.title
        return ""

    @property
    def text(self) -> str:
        if self.extraction is not None:
            return self.extraction.text
        return feed_text(self.entry)

    @property
    def language(self) -> str | None:
        """The page's language (declared or detected), else the one the feed declares for the entry."""
        if self.extraction is not None and self.extraction.language:
            return self.extraction.language
        return self.entry.language if self.entry is not None else None

    @property
    def lead(self) -> str | None:
        return self.entry.summary if self.entry is not None else None


def feed_text(entry: Entry | None) -> str:
    """The entry's own text: full content when the feed carries it, else its summary, else its title."""
    if entry is None:
        return ""
    for candidate in (entry.content, entry.summary, entry.title):
        if candidate and candidate.strip():
            return candidate.strip()
    return ""


_EARLIEST_ZONE = timedelta(hours=14)  # UTC+14, the first time zone to start a day
_LATEST_ZONE = timedelta(hours=12)  # UTC-12, the last


def _published(item: ArticleInput) -> datetime | None:
    page = item.extraction.published if item.extraction is not None else None
    feed = item.entry.published if item.entry is not None else None
    if page is None or feed is None:
        return page or feed
    # Pages usually give a date only (midnight); the feed's timestamp on that day is more precise. The
    # day is the publisher's: in UTC, its moments run from 14 h before that midnight (UTC+14) to 36 h
    # after it (UTC-12), so an evening story west of UTC (the next day in UTC) keeps its time too.
    if page.date() == feed.date():
        return feed
    date_only = (page.hour, page.minute, page.second, page.microsecond) == (0, 0, 0, 0)
    if date_only and page - _EARLIEST_ZONE <= feed < page + timedelta(days=1) + _LATEST_ZONE:
        return feed
    return page


def build_message(
    item: ArticleInput,
    topics: list[TopicTag],
    *,
    processed_at: datetime,
    replayed: bool,
    pipeline_version: str,
    taxonomy_version: str,
    extractor: str,
) -> ArticleMessage:
    text = item.text
    extraction = item.extraction
    authors = list(extraction.authors) if extraction is not None and extraction.authors else []
    if not authors and item.entry is not None:
        authors = list(item.entry.authors)
    published = _published(item)
    normalised = normalise_text(text)
    return ArticleMessage(
        id=item.id,
        url=item.url,
        original_url=item.original_url,
        feed=FeedRef(url=item.feed.url, title=item.feed.title) if item.feed is not None else None,
        guid=item.entry.guid if item.entry is not None else None,
        title=item.title,
        authors=authors,
        published=utc_iso(published) if published is not None else None,
        language=item.language,
        site_name=extraction.site_name if extraction is not None else None,
        summary=item.entry.summary if item.entry is not None else None,
        text=text,
        text_source="page" if extraction is not None else "feed",
        content_hash=hash_normalised(normalised),
        word_count=normalised.count(" ") + 1 if normalised else 0,
        topics=[Topic(slug=t.slug, score=round(t.score, 4), matches=dict(t.matches)) for t in topics],
        fetched_at=utc_iso(item.fetched_at),
        processed_at=utc_iso(processed_at),
        replayed=replayed,
        pipeline=Pipeline(version=pipeline_version, taxonomy=taxonomy_version, extractor=extractor),
    )
