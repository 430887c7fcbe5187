"""Embedded SQLite state: feed health and conditional-GET validators, the fetch log, published ids.

One file (``state.db``) under the state dir, WAL mode so a reader (``feeds status``) never blocks a run.
Schema changes are numbered migrations keyed on ``PRAGMA user_version``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

_MIGRATIONS: list[str] = [
    # 1: first schema
    """
    CREATE TABLE feeds (
        url TEXT PRIMARY KEY,
        title TEXT,
        etag TEXT,
        last_modified TEXT,
        body_hash TEXT,
        last_poll_at TEXT,
        last_success_at TEXT,
        last_status INTEGER,
        last_error TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        entries_seen INTEGER NOT NULL DEFAULT 0,
        page_failures INTEGER NOT NULL DEFAULT 0,
        next_poll_at TEXT
    );
    CREATE TABLE published (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        feed_url TEXT,
        published_at TEXT NOT NULL
    );
    CREATE TABLE fetch_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        url TEXT NOT NULL,
        status INTEGER,
        error TEXT,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX fetch_log_url ON fetch_log(url);
    """,
    # 2: adaptive schedule and health (processors/schedule.py), discovery
    """
    ALTER TABLE feeds ADD COLUMN rate_count REAL;
    ALTER TABLE feeds ADD COLUMN rate_since TEXT;
    ALTER TABLE feeds ADD COLUMN ttl_seconds INTEGER;
    ALTER TABLE feeds ADD COLUMN retry_after_until TEXT;
    ALTER TABLE feeds ADD COLUMN parked_since TEXT;
    ALTER TABLE feeds ADD COLUMN failing_since TEXT;
    ALTER TABLE feeds ADD COLUMN schedule_reason TEXT;
    ALTER TABLE feeds ADD COLUMN last_page_error TEXT;
    ALTER TABLE feeds ADD COLUMN discovered_url TEXT;
    """,
]

_TIME_COLUMNS = (
    "last_poll_at",
    "last_success_at",
    "next_poll_at",
    "rate_since",
    "retry_after_until",
    "parked_since",
    "failing_since",
)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class StateError(RuntimeError):
    """The state store cannot be opened or used (one-line message)."""


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


class StateStore:
    """Thread-safe facade over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open state store {path}: {exc}") from exc
        self._lock = threading.RLock()
        self._migrate()

    @classmethod
    def in_dir(cls, state_dir: Path) -> StateStore:
        return cls(state_dir / "state.db")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._lock:
            (current,) = self._db.execute("PRAGMA user_version").fetchone()
            if current > len(_MIGRATIONS):
                raise StateError(
                    f"state store {self.path} has schema version {current}, newer than this newswire knows"
                )
            for number in range(current, len(_MIGRATIONS)):
                # executescript manages its own transaction; the version bump rides in the same one
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {_MIGRATIONS[number]}; PRAGMA user_version = {number + 1}; COMMIT;"
                )

    # feeds -------------------------------------------------------------------------------------------

    def feed(self, url: str) -> FeedState | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM feeds WHERE url = ?", (url,)).fetchone()
            names = [d[0] for d in self._db.execute("SELECT * FROM feeds LIMIT 0").description]
        return _feed_from_row(names, row) if row else None

    def feeds(self) -> list[FeedState]:
        with self._lock:
            cur = self._db.execute("SELECT * FROM feeds ORDER BY url")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return [_feed_from_row(names, row) for row in rows]

    def feeds_for(self, urls: Iterable[str]) -> dict[str, FeedState]:
        """The stored states of these feeds (missing ones left out), in a few queries, not one per feed."""
        wanted = list(dict.fromkeys(urls))
        found: dict[str, FeedState] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cur = self._db.execute(f"SELECT * FROM feeds WHERE url IN ({marks})", chunk)
                names = [d[0] for d in cur.description]
                for row in cur.fetchall():
                    state = _feed_from_row(names, row)
                    found[state.url] = state
        return found

    def save_feed(self, state: FeedState) -> None:
        self.save_feeds([state])

    def save_feeds(self, states: Iterable[FeedState]) -> None:
        """Insert or update many feeds in one transaction (a poll cycle of 10,000 feeds is one commit)."""
        rows = [_feed_values(s) for s in states]
        if not rows:
            return
        columns = ", ".join(rows[0])
        marks = ", ".join(f":{k}" for k in rows[0])
        updates = ", ".join(f"{k} = excluded.{k}" for k in rows[0] if k != "url")
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO feeds ({columns}) VALUES ({marks}) ON CONFLICT(url) DO UPDATE SET {updates}",
                rows,
            )

    # published ids -----------------------------------------------------------------------------------

    def published_among(self, ids: Iterable[str]) -> set[str]:
        wanted = list(ids)
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT id FROM published WHERE id IN ({marks})", chunk)
                found.update(r[0] for r in rows)
        return found

    def mark_published(self, rows: Iterable[PublishedRow], at: datetime) -> None:
        stamp = _iso(at)
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO published (id, url, feed_url, published_at) VALUES (?, ?, ?, ?)",
                [(r.id, r.url, r.feed_url, stamp) for r in rows],
            )

    def published_count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM published").fetchone()
        return int(count)

    # fetch log ---------------------------------------------------------------------------------------

    def log_fetches(self, rows: Iterable[tuple[datetime, str, str, int | None, str | None, int]]) -> None:
        """Rows of (at, kind, url, status, error, bytes)."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO fetch_log (at, kind, url, status, error, bytes) VALUES (?, ?, ?, ?, ?, ?)",
                [(_iso(at), kind, url, status, error, size) for at, kind, url, status, error, size in rows],
            )

    def fetch_log(self, url: str | None = None) -> list[tuple[str, str, str, int | None, str | None, int]]:
        query = "SELECT at, kind, url, status, error, bytes FROM fetch_log"
        args: tuple[str, ...] = ()
        if url is not None:
            query += " WHERE url = ?"
            args = (url,)
        with self._lock:
            return [tuple(r) for r in self._db.execute(query + " ORDER BY seq", args)]


def _feed_values(state: FeedState) -> dict[str, object]:
    values: dict[str, object] = {}
    for item in fields(FeedState):
        value = getattr(state, item.name)
        values[item.name] = _iso(value) if item.name in _TIME_COLUMNS else value
    return values


def _feed_from_row(names: list[str], row: tuple[object, ...]) -> FeedState:
    data = dict(zip(names, row))
    for key in _TIME_COLUMNS:
        data[key] = _dt(data[key])  # type: ignore[arg-type]
    known = {item.name for item in fields(FeedState)}
    return FeedState(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]
