"""Feed leases in the state store (real PostgreSQL and SQLite): a worker leases due feeds in list order
up to its batch, and on PostgreSQL a worker leasing at the same moment as another still gets feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newswire.connectors.state import StateStore

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)
URLS = [f"http://feeds.test/{i:03d}.xml" for i in range(100)]


def _registered(store: StateStore) -> StateStore:
    store.register_feeds((url, None) for url in URLS)
    return store


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


def test_leases_take_due_feeds_in_list_order_up_to_the_batch_and_never_twice(state_url: str) -> None:
    with _registered(StateStore(state_url)) as store:
        first = store.lease_due(URLS, owner="a", now=NOW, lease_for=LEASE, limit=20)
        second = store.lease_due(URLS, owner="b", now=NOW, lease_for=LEASE, limit=20)
        assert list(first) == URLS[:20] and list(second) == URLS[20:40]
        rest = store.lease_due(URLS, owner="c", now=NOW, lease_for=LEASE)
        assert list(rest) == URLS[40:]
        assert store.lease_due(URLS, owner="d", now=NOW, lease_for=LEASE, limit=20) == {}
        # a lease that lapsed comes back
        assert list(store.lease_due(URLS, owner="d", now=NOW + LEASE, lease_for=LEASE, limit=5)) == URLS[:5]


def test_a_lease_taken_while_another_worker_leases_still_gets_feeds(pg_url: str) -> None:
    # Worker A's lease transaction is held open at the moment it has locked what it leases; worker B
    # leases then. B must get the next feeds, not nothing: a worker that leases nothing ends its run,
    # so if A's transaction locked every due row (not only the batch it takes), workers starting
    # together would leave all the work to one of them.
    with _registered(StateStore(pg_url)) as a, StateStore(pg_url) as b:
        seen: dict[str, Any] = {}

        def during_a(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "FOR UPDATE" in statement and "b" not in seen:
                seen["b"] = b.lease_due(URLS, owner="b", now=NOW, lease_for=LEASE, limit=20)

        engine = a._engine
        sa.event.listen(engine, "after_cursor_execute", during_a)
        try:
            got_a = a.lease_due(URLS, owner="a", now=NOW, lease_for=LEASE, limit=20)
        finally:
            sa.event.remove(engine, "after_cursor_execute", during_a)
        got_b = seen["b"]
        assert len(got_a) == 20 and len(got_b) == 20, (len(got_a), len(got_b))
        assert not set(got_a) & set(got_b)
