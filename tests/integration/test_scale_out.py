"""Many workers over one state store: real PostgreSQL (and SQLite), real Tansu broker, real local feeds.

Worker processes run :mod:`tests.support.scale_worker` (``run_leased``: feed leases, article claims).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newswire.config import settings_to_params
from newswire.connectors.kafka import KafkaSettings, Received
from newswire.connectors.state import StateStore
from newswire.processors.canonical import article_id, canonical_url
from tests.integration.pipeline_support import pipeline_settings
from tests.support.feed_farm import FeedFarm, start_feed_farm, write_taxonomy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ReadAll = Callable[..., list[Received]]


@pytest.fixture
def farm() -> Iterator[FeedFarm]:
    # answers take 100 ms, so the work lasts long enough for the workers to meet (each needs a few
    # seconds to set up its broker connection and extraction pool on a loaded machine)
    with start_feed_farm(300, delay=0.1) as running:
        yield running


def _worker(
    settings_json: str, feeds: Path, *, metrics: bool = False, linger: bool = False, barrier: bool = False
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.support.scale_worker", settings_json, str(feeds)]
    if barrier:
        args.append("--barrier")
    if metrics:
        args += ["--metrics-port", "0"]
    if linger:
        args.append("--linger")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # a session of its own: a kill takes the worker with its extraction processes, as a crash of its host
    return subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _summary(proc: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    while not line and proc.poll() is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
    assert line, f"worker ended without a summary: {proc.stderr.read() if proc.stderr else ''}"
    return dict(json.loads(line))


def _settings(kafka: KafkaSettings, tmp_path: Path, state_url: str | None, **overrides: Any) -> str:
    settings = pipeline_settings(
        kafka, tmp_path / "state", state_url=state_url, archive=False, extract_workers=1, per_host=8,
        publish_batch=40, lease_batch=20, lease_seconds=60.0, taxonomy=write_taxonomy(tmp_path / "harbour.yaml"),
    )
    return json.dumps(settings_to_params(replace(settings, **overrides)))


def _ids(farm: FeedFarm) -> set[str]:
    return {article_id(canonical_url(url)) for url in farm.article_urls}


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_three_workers_over_one_store_publish_every_article_exactly_once_and_metrics_match(
    backend: str, request: pytest.FixtureRequest, farm: FeedFarm, kafka_settings: KafkaSettings,
    tmp_path: Path, read_all: ReadAll,
) -> None:
    state_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    settings = _settings(kafka_settings, tmp_path, state_url, partitions=3)
    feeds = farm.write_list(tmp_path / "feeds.txt")
    workers = [_worker(settings, feeds, metrics=True, linger=True, barrier=True) for _ in range(3)]
    try:
        for w in workers:  # all imported and ready: start them together
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        summaries = [_summary(w) for w in workers]
        scraped = [_scrape(s["metrics_port"]) for s in summaries]
    finally:
        for w in workers:
            w.communicate(timeout=60)  # closes stdin: the worker stops lingering
    assert [w.returncode for w in workers] == [0, 0, 0]

    # every feed polled once, by one of the workers; the workers shared the list
    assert farm.feed_requests() == Counter({f"/feeds/{i}.xml": 1 for i in range(300)})
    assert sum(s["feeds_polled"] for s in summaries) == 300
    assert sum(1 for s in summaries if s["feeds_polled"]) >= 2, [s["feeds_polled"] for s in summaries]

    # every article exactly once on the broker (each was carried by two feeds)
    expected = _ids(farm)
    messages = read_all(kafka_settings, kafka_settings.topic("articles"), expected=len(expected), timeout=20)
    assert Counter(m.key.decode() for m in messages if m.key) == Counter({i: 1 for i in expected})
    assert {m.partition for m in messages} == {0, 1, 2}  # keyed by id over the 3 partitions created
    assert sum(s["published"] for s in summaries) == len(expected) == 600
    assert sum(s["duplicates"] for s in summaries) == 600  # the second carrier of each
    with StateStore.open(tmp_path / "state", state_url) as store:
        assert store.published_count() == 600

    # the metrics endpoints add up to what reached the broker
    def total(name: str) -> float:
        return sum(s.get(name, 0.0) for s in scraped)

    assert total("newswire_articles_published_total") == len(messages) == 600
    assert total('newswire_polls_total{outcome="200"}') == 300
    assert total("newswire_duplicates_skipped_total") == 600
    assert total('newswire_fetch_seconds_count{kind="feed"}') == 300
    assert total('newswire_fetch_seconds_count{kind="page"}') == 600
    assert total("newswire_extract_seconds_count") == 600
    assert sum(s.get("newswire_publish_seconds_count", 0) for s in scraped) >= 3
    assert not any(k.startswith("newswire_dead_letters_total") for s in scraped for k in s)
    assert all(s["newswire_most_overdue_feed_seconds"] == 0 for s in scraped)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing_once_its_leases_expire(
    pg_url: str, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    # long enough that the "early" worker below starts (imports, connects) well inside it on a loaded
    # 2-core machine: at 3 s it once started after the leases had expired and polled every feed
    lease = 10.0
    with start_feed_farm(300, delay=0.01) as farm:
        feeds = farm.write_list(tmp_path / "feeds.txt")
        # one worker leases every feed, publishes a batch or two, and is killed
        first = _worker(_settings(kafka_settings, tmp_path, pg_url, lease_batch=300, lease_seconds=lease,
                                  per_host=2), feeds)
        with StateStore(pg_url) as store:
            deadline = time.monotonic() + 120
            while store.published_count() == 0 and first.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            os.killpg(first.pid, signal.SIGKILL)
            first.communicate(timeout=30)
            done_before = store.published_count()
            assert 0 < done_before < 600, done_before
        # the dead worker ran on another machine: a worker of this one gives back the leases of a dead
        # run of its own machine at once (test_pipeline_sample), and cannot judge another machine's
        engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE feeds SET lease_owner = 'elsewhere:1:dead:1' WHERE lease_owner IS NOT NULL"))
            conn.execute(sa.text("UPDATE claims SET owner = 'elsewhere:1:dead:1'"))
        engine.dispose()
        with StateStore(pg_url) as store:
            # a worker started at once finds every feed leased by the dead one: nothing to do yet
            early = _worker(_settings(kafka_settings, tmp_path, pg_url, lease_seconds=lease), feeds)
            assert _summary(early)["feeds_polled"] == 0
            early.communicate(timeout=30)

            time.sleep(lease)  # the dead worker's leases and claims expire
            second = _worker(_settings(kafka_settings, tmp_path, pg_url, lease_seconds=lease), feeds)
            summary = _summary(second)
            second.communicate(timeout=30)
            assert second.returncode == 0
            assert summary["feeds_polled"] == 300
            assert summary["published"] == 600 - done_before
            assert store.published_count() == 600

        expected = _ids(farm)
        messages = read_all(kafka_settings, kafka_settings.topic("articles"), expected=len(expected), timeout=20)
        assert Counter(m.key.decode() for m in messages if m.key) == Counter({i: 1 for i in expected})
