"""A feed's state after a poll whose entries the broker did not all acknowledge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newswire.pipeline import FeedPoll, feed_state_after
from newswire.processors.schedule import ScheduleSettings
from newswire.records import FeedSource, FetchResult, ParsedFeed

NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
URL = "http://feeds.test/a.xml"


def _poll() -> FeedPoll:
    result = FetchResult(URL, URL, 200, {"etag": '"v1"'}, b"", NOW)
    return FeedPoll(FeedSource(URL, None), None, result, parsed=ParsedFeed(title="A", entries=[], format="rss20"))


def test_a_first_poll_with_unacknowledged_entries_says_pending() -> None:
    """A plan no later than the floor (a busy feed; here a default interval of 5 minutes) kept its
    reason, and `feeds status` showed the feed as ok with a backlog the broker never took."""
    state = feed_state_after(
        _poll(), now=NOW, schedule=ScheduleSettings(default_interval=timedelta(minutes=5), jitter=0.0), entries_seen=300, new_entries=300, page_failures=0, all_done=False, draw=0.5
    )
    assert state.schedule_reason == "pending" and state.etag is None
    assert state.next_poll_at is not None and state.next_poll_at <= NOW + timedelta(minutes=5)


def test_a_poll_whose_entries_all_ended_is_not_pending() -> None:
    state = feed_state_after(
        _poll(), now=NOW, schedule=ScheduleSettings(), entries_seen=300, page_failures=0, all_done=True, draw=0.5
    )
    assert state.schedule_reason != "pending" and state.etag == '"v1"'
