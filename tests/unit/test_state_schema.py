"""The state store's numbered migrations: an old store opens, keeps its rows and gains the new columns."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newswire.connectors.state import _MIGRATIONS, StateConfigError, StateStore, migration_sql
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


def test_another_applications_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("CREATE TABLE feeds (id INTEGER PRIMARY KEY)")  # a name newswire uses too
    with pytest.raises(StateConfigError, match=r"is not a newswire state store: .*\(feeds, notes\)"):
        StateStore(path)
    with sqlite3.connect(path) as db:
        assert sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master")) == ["feeds", "notes"]
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0


def test_a_versioned_sqlite_database_without_newswires_tables_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        db.execute("PRAGMA user_version = 2")  # would otherwise get migration 3 only
    with pytest.raises(StateConfigError, match="schema version 2 but no feeds table"):
        StateStore(path)


@pytest.mark.parametrize("content", [b"plain text, not a database\n" * 40, b"x"])
def test_a_file_that_is_not_sqlite_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    with pytest.raises(StateConfigError, match="is not an SQLite database"):
        StateStore(path)
    assert path.read_bytes() == content


def test_a_damaged_sqlite_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.save_feed(FeedState(url="http://a.test/feed"))
    data = bytearray(path.read_bytes())
    for i in range(100, len(data)):  # the header stays, every page after it is garbage
        data[i] = (data[i] * 7 + 13) % 256
    path.write_bytes(bytes(data))
    for wal in tmp_path.glob("state.db-*"):
        wal.unlink()
    with pytest.raises(StateConfigError, match="malformed|not a database"):
        StateStore(path)


def test_an_empty_file_and_a_new_file_become_state_stores(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    for path in (empty, tmp_path / "new.db"):
        with StateStore(path) as store:
            assert store.migrations_applied == len(_MIGRATIONS)
        with StateStore(path) as store:
            assert store.migrations_applied == 0
