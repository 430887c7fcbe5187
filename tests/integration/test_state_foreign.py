"""A state store is never added to another application's database: a database without newswire's
schema must be empty (real PostgreSQL and SQLite); an empty or newswire's own one opens as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from newswire.connectors.state import _MIGRATIONS, StateConfigError, StateStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


@pytest.mark.parametrize("versioned", [False, True])
def test_a_database_with_tables_of_its_own_is_refused_and_left_alone(state_url: str, versioned: bool) -> None:
    engine = _engine(state_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)")
    if versioned and engine.dialect.name != "sqlite":
        pytest.skip("a schema version of another application's: SQLite's user_version")
    if versioned:  # many applications number their own schema with SQLite's user_version
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA user_version = 3")
    with pytest.raises(StateConfigError, match=r"(is not a newswire state store: .*\(invoices\))|(no feeds table)"):
        StateStore(state_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["invoices"]
        if engine.dialect.name == "sqlite":  # not even switched to WAL, which is written into the file
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "delete"
    engine.dispose()
    if state_url.startswith("sqlite"):
        path = Path(state_url.removeprefix("sqlite:///"))
        assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_an_empty_database_becomes_a_state_store_and_opens_again(state_url: str) -> None:
    with StateStore(state_url) as store:
        assert store.migrations_applied == len(_MIGRATIONS)
    with StateStore(state_url) as store:
        assert store.migrations_applied == 0 and store.schema_version() == len(_MIGRATIONS)
