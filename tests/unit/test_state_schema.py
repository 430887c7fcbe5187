"""The state store's numbered migrations: an old store opens, keeps its rows and gains the new columns."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newswire.connectors.state import _MIGRATIONS, StateStore, migration_sql
from newswire.records import FeedState

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def test_a_version_1_store_is_migrated_in_place_and_keeps_its_feeds(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(";".join(migration_sql(0, "sqlite")) + "; PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO feeds (url, etag, consecutive_failures, next_poll_at) VALUES (?, ?, ?, ?)",
        ("http://a.test/feed", '"v1"', 2, NOW.isoformat()),
    )
    db.commit()
    db.close()

    with StateStore(path) as store:
        (old,) = store.feeds()
        assert old.etag == '"v1"' and old.consecutive_failures == 2 and old.next_poll_at == NOW
        assert old.parked_since is None and old.rate_count is None and not old.parked
        assert store.schema_version() == len(_MIGRATIONS)
        assert store.migrations_applied == len(_MIGRATIONS) - 1


def test_save_feeds_round_trips_every_field_in_one_batch(tmp_path: Path) -> None:
    states = [
        FeedState(
            url=f"http://h{i}.test/feed",
            rate_count=1.5 * i,
            rate_since=NOW - timedelta(days=i),
            ttl_seconds=600,
            retry_after_until=NOW + timedelta(hours=1),
            parked_since=NOW if i % 2 else None,
            failing_since=NOW,
            schedule_reason="retry-after",
            last_page_error="blocked-address",
            discovered_url="http://h.test/rss.xml",
            next_poll_at=NOW,
        )
        for i in range(1200)
    ]
    with StateStore.in_dir(tmp_path) as store:
        store.save_feeds(states)
        got = store.feeds_for(s.url for s in states)
        assert [got[s.url] for s in states] == states
        assert store.feeds_for(["http://missing.test/"]) == {}
        assert got[states[1].url].waiting(NOW) and not got[states[1].url].waiting(NOW + timedelta(hours=2))
