"""Building the article message (processors/message.py): which stage each field comes from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from newswire.contract import load_schema
from newswire.processors.feeds import parse_feed
from newswire.processors.message import ArticleInput, build_message
from newswire.records import Entry, Extraction, FeedSource

VALIDATOR = Draft202012Validator(load_schema("article-v1"))
NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def _message(entry: Entry | None, extraction: Extraction | None) -> dict[str, object]:
    item = ArticleInput(
        id="0" * 32,
        url="https://news.example/a",
        original_url="https://news.example/a",
        feed=FeedSource("https://news.example/feed.xml"),
        entry=entry,
        extraction=extraction,
        fetched_at=NOW,
    )
    message = build_message(
        item, [], processed_at=NOW, replayed=False, pipeline_version="0", taxonomy_version="t", extractor="x"
    ).to_dict()
    assert [e.message for e in VALIDATOR.iter_errors(message)] == []
    return message


def _entry(language: str | None) -> Entry:
    return Entry(link="https://news.example/a", guid=None, title="Title", summary="A summary.", content=None,
                 language=language)


@pytest.mark.parametrize(
    ("entry_language", "extraction", "expected"),
    [
        ("de", None, "de"),  # text from the feed: the language the feed declares
        (None, None, None),  # nothing declared: no guess
        ("de", Extraction(text="Text.", language="fr"), "fr"),  # the page's language wins
        ("de", Extraction(text="Text.", language=None), "de"),  # a page without one: the feed's
    ],
)
def test_language_comes_from_the_page_else_the_feed(
    entry_language: str | None, extraction: Extraction | None, expected: str | None
) -> None:
    message = _message(_entry(entry_language), extraction)
    assert message["language"] == expected
    assert message["text_source"] == ("feed" if extraction is None else "page")


def test_feed_only_article_of_a_german_rss_feed_is_german() -> None:
    feed = parse_feed(
        b'<rss version="2.0"><channel><title>t</title><language>de</language><item><title>Titel</title>'
        b"<link>https://news.example/a</link><description>Ein Text.</description></item></channel></rss>",
        "https://news.example/feed.xml",
    )
    assert _message(feed.entries[0], None)["language"] == "de"


@pytest.mark.parametrize(
    ("page", "feed", "expected"),
    [
        # the page's date alone, the feed's 23:30 at -05:00 (04:30 the next day in UTC): the feed's time
        ("2021-09-14T00:00:00+00:00", "2021-09-15T04:30:00+00:00", "2021-09-15T04:30:00Z"),
        ("2021-09-14T00:00:00+00:00", "2021-09-14T18:00:00+00:00", "2021-09-14T18:00:00Z"),  # same UTC day
        ("2021-09-14T00:00:00+00:00", "2021-09-13T11:00:00+00:00", "2021-09-13T11:00:00Z"),  # 14 Sep at +14:00
        # another day in every time zone: the page's date stands
        ("2021-09-14T00:00:00+00:00", "2021-09-16T00:00:00+00:00", "2021-09-14T00:00:00Z"),
        # a page with its own time keeps it when the days differ
        ("2021-09-14T09:15:00+00:00", "2021-09-15T04:30:00+00:00", "2021-09-14T09:15:00Z"),
    ],
)
def test_a_page_date_takes_the_feeds_time_on_the_publishers_day(page: str, feed: str, expected: str) -> None:
    entry = Entry(link="https://news.example/a", guid=None, title="T", summary="S", content=None,
                  published=datetime.fromisoformat(feed))
    message = _message(entry, Extraction(text="Text.", published=datetime.fromisoformat(page)))
    assert message["published"] == expected
