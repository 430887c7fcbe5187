"""The whole path on the bundled sample web: real local HTTP server, real Tansu broker, real SQLite."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from demo.webserver import RunningServer, start_server
from newswire.connectors.feedlist import read_feed_list
from newswire.connectors.kafka import BrokerUnavailable, KafkaSettings, Received
from newswire.connectors.state import StateStore
from newswire.contract import utc_now
from newswire.devbroker import DevBroker
from newswire.live import run_once
from newswire.processors.canonical import article_id, canonical_url
from tests.integration.pipeline_support import (
    EXPECTED,
    SAMPLE,
    decoded,
    pipeline_settings,
    schema_errors,
    write_sample_feeds,
)

pytestmark = pytest.mark.integration

ReadAll = Callable[..., list[Received]]


def _expected_urls(web: RunningServer) -> dict[str, str]:
    """canonical URL -> sample path, for every article the sample's feeds link to (dead link included)."""
    urls = {canonical_url(web.url(path)): path for path in EXPECTED["articles"]}
    for path in EXPECTED["dead_links"]:
        urls[canonical_url(web.url(path))] = path
    return urls


def test_run_publishes_every_article_once_with_valid_messages_and_fans_out(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    settings = pipeline_settings(kafka_settings, tmp_path / "state")
    summary = run_once(settings, read_feed_list(feeds_file))

    expected = _expected_urls(sample_web)
    assert summary.published == EXPECTED["messages_expected"] == len(expected)
    messages = read_all(kafka_settings, kafka_settings.topic("articles"), expected=len(expected))
    bodies = decoded(messages)
    assert Counter(b["url"] for b in bodies) == Counter({url: 1 for url in expected})
    for message, body in zip(messages, bodies):
        assert schema_errors(body) == []
        assert body["id"] == article_id(body["url"])
        assert message.key == body["id"].encode()
        headers = dict(message.headers)
        assert headers["content-type"] == b"application/json"
        assert headers["schema"] == b"newswire.article/1"
        assert "replayed" not in headers and body["replayed"] is False

    by_path = {expected[b["url"]]: b for b in bodies}
    for path, meta in EXPECTED["articles"].items():
        body = by_path[path]
        assert body["text_source"] == "page", path
        assert body["title"] == meta["title"]
        assert body["language"] == meta["language"]
        assert body["word_count"] > 200
    dead = by_path[next(iter(EXPECTED["dead_links"]))]
    assert dead["text_source"] == "feed" and dead["text"]
    assert dead["language"] == "en"  # the page 404s: the language its feed item declares (dc:language)

    # the article linked by two feeds (once with utm_ parameters) is published once, from its first feed
    drills = by_path["articles/joint-naval-drills.html"]
    assert drills["feed"]["url"].endswith("/feeds/courier.xml")
    assert "utm_source" in drills["original_url"] and "utm_" not in drills["url"]

    # fan-out: each topic stream holds exactly the articles tagged with it, unchanged
    for slug in ("afghanistan", "russia", "china", "civil-military"):
        tagged = {b["id"]: m.value for b, m in zip(bodies, messages) if slug in {t["slug"] for t in b["topics"]}}
        stream = read_all(kafka_settings, kafka_settings.topic(f"topic.{slug}"), expected=len(tagged) or None)
        assert {m.key.decode(): m.value for m in stream} == tagged, slug
        assert len(stream) == len(tagged)


def test_sample_articles_get_the_topics_a_reader_would_assign(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    run_once(pipeline_settings(kafka_settings, tmp_path / "state"), read_feed_list(feeds_file))
    bodies = decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=16))
    expected = _expected_urls(sample_web)
    wrong = {}
    for body in bodies:
        path = expected[body["url"]]
        meta = EXPECTED["articles"].get(path) or EXPECTED["dead_links"][path]
        got = sorted(t["slug"] for t in body["topics"])
        if got != sorted(meta["topics"]):
            wrong[path] = (got, sorted(meta["topics"]))
        for topic in body["topics"]:
            assert 0 < topic["score"] <= 1 and topic["matches"], (path, topic)
    assert wrong == {}


def test_second_run_uses_conditional_requests_and_publishes_nothing_new(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    settings = pipeline_settings(kafka_settings, tmp_path / "state")
    feeds = read_feed_list(feeds_file)
    first = run_once(settings, feeds)
    sample_web.clear_requests()
    second = run_once(settings, feeds, poll_all=True)

    assert first.published == 16
    assert second.published == 0
    assert second.feeds_not_modified == 3  # the three good feeds; the broken one never got validators
    good_feeds = [f.url for f in feeds if "broken" not in f.url]
    for url in good_feeds:
        path = url.removeprefix(sample_web.base_url)
        (request,) = sample_web.requests_for(path)
        assert request.headers.get("if-none-match") or request.headers.get("if-modified-since")
        assert request.status == 304
    # no article page is fetched again
    assert not [r for r in sample_web.requests if r.path.startswith("/articles/")]
    assert len(read_all(kafka_settings, kafka_settings.topic("articles"), expected=16)) == 16


def test_due_feeds_only_unless_all(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = pipeline_settings(kafka_settings, tmp_path / "state")
    feeds = read_feed_list(feeds_file)
    run_once(settings, feeds)
    sample_web.clear_requests()
    again = run_once(settings, feeds)  # right after a poll, no feed is due (default interval 15 min)
    assert again.feeds_polled == 0
    assert sample_web.requests == []


def test_broken_feed_and_dead_link_are_recorded_while_the_rest_flows(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    settings = pipeline_settings(kafka_settings, tmp_path / "state")
    summary = run_once(settings, read_feed_list(feeds_file))
    assert summary.feeds_failed == 1
    assert summary.page_failures == 1
    assert summary.published == 16

    with StateStore.in_dir(settings.state_dir) as store:
        states = {s.url.removeprefix(sample_web.base_url): s for s in store.feeds()}
        broken = states["/feeds/broken.xml"]
        assert broken.consecutive_failures == 1 and broken.last_error and broken.last_error.startswith("parse")
        assert broken.last_success_at is None
        assert states["/feeds/continental.rdf"].page_failures == 1
        assert states["/feeds/courier.xml"].consecutive_failures == 0
        dead_page = sample_web.url(next(iter(EXPECTED["dead_links"])))
        assert [row[3:5] for row in store.fetch_log(dead_page)] == [(404, "http-404")]

    letters = decoded(read_all(kafka_settings, kafka_settings.topic("deadletter"), expected=1))
    assert len(letters) == 1
    (letter,) = letters
    assert schema_errors(letter, deadletter=True) == []
    assert letter["stage"] == "parse" and letter["url"].endswith("/feeds/broken.xml")


def test_nothing_is_marked_done_while_the_broker_is_down_and_the_next_run_publishes_it(
    sample_web: RunningServer,
    feeds_file: Path,
    private_broker: DevBroker,
    settings_for: Callable[..., KafkaSettings],
    tmp_path: Path,
    read_all: ReadAll,
) -> None:
    kafka = settings_for(private_broker.bootstrap, request_timeout_ms=3000)
    settings = pipeline_settings(kafka, tmp_path / "state")
    feeds = read_feed_list(feeds_file)
    private_broker.stop(grace_s=0)
    with pytest.raises(BrokerUnavailable):
        run_once(settings, feeds)
    with StateStore.in_dir(settings.state_dir) as store:
        assert store.published_count() == 0
        assert all(f.etag is None for f in store.feeds())

    private_broker.start()
    summary = run_once(settings, feeds)
    assert summary.published == 16 and summary.completed
    assert len(read_all(kafka, kafka.topic("articles"), expected=16)) == 16


def test_broker_lost_mid_run_leaves_entries_pending_for_the_next_run(
    feeds_file: Path,
    private_broker: DevBroker,
    settings_for: Callable[..., KafkaSettings],
    tmp_path: Path,
    read_all: ReadAll,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # pages answer slowly, and the broker goes away while they are being fetched
    with start_server(SAMPLE, delay=0.4) as slow:
        path = write_sample_feeds(slow, tmp_path / "slow.opml")
        kafka = settings_for(private_broker.bootstrap, request_timeout_ms=3000)
        floor_min = 0.25  # 15 s: feeds with pending entries are due again after the poll floor
        settings = pipeline_settings(kafka, tmp_path / "state", per_host=2, poll_floor=floor_min)
        feeds = read_feed_list(path)

        import threading

        stopper = threading.Timer(1.0, private_broker.stop, kwargs={"grace_s": 0})
        stopper.start()
        try:
            summary = run_once(settings, feeds)
        finally:
            stopper.join()
        assert not summary.completed and summary.publish_failures > 0
        # the terminal (warnings) gets a line per batch, not one per article the broker did not take
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "newswire.pipeline"]
        assert not any(line.startswith("publish failed id=") for line in warned), warned
        assert any(line.startswith("publish failed for ") for line in warned), warned
        with StateStore.in_dir(settings.state_dir) as store:
            assert store.published_count() == summary.published
            # validators of feeds with pending entries did not advance: the next poll refetches them
            pending_feeds = [f for f in store.feeds() if "broken" not in f.url and f.etag is None]
            assert pending_feeds
            # ... and they are due after the poll floor, not at the feed's next adaptive poll, nor at once
            # (a message that keeps failing would have the feed refetched at every tick)
            now = utc_now()
            assert all(f.schedule_reason == "pending" and not f.is_due(now) for f in pending_feeds)
            assert all(f.is_due(now + timedelta(minutes=floor_min)) for f in pending_feeds)
            due_at = max(f.next_poll_at for f in pending_feeds if f.next_poll_at is not None)

        private_broker.start()  # an empty broker: everything not acknowledged must come again
        kafka_again = settings_for(private_broker.bootstrap)
        settings_again = pipeline_settings(
            kafka_again, tmp_path / "state", topic_prefix=kafka.topic_prefix, per_host=2
        )
        time.sleep(max(0.0, (due_at - utc_now()).total_seconds()) + 0.2)
        retry = run_once(settings_again, feeds)  # a plain next run, not --all
        assert retry.completed
        assert summary.published + retry.published == 16
        assert len(read_all(kafka, kafka.topic("articles"), expected=retry.published)) == retry.published


def test_a_loopback_page_that_was_not_allowed_is_never_fetched(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    with start_server(None, "127.0.0.2") as forbidden, start_server(None) as allowed:
        forbidden.add_route("/secret.html", b"<html><body><p>internal admin page</p></body></html>")
        feed = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>{allowed.base_url}/</link>
        <item><title>Points inward</title><link>{forbidden.base_url}/secret.html</link>
        <description>An entry whose link points at a loopback host nobody allowed.</description></item>
        <item><title>Local file</title><link>file:///etc/passwd</link><description>no</description></item>
        </channel></rss>""".encode()
        allowed.add_route("/feed.xml", feed, content_type="application/rss+xml")
        settings = pipeline_settings(kafka_settings, tmp_path / "state")  # allows 127.0.0.1 only
        from newswire.records import FeedSource

        summary = run_once(settings, [FeedSource(allowed.url("/feed.xml"))])
        assert forbidden.requests == []
        assert summary.published == 1 and summary.page_failures == 1
        (body,) = decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=1))
        assert body["text_source"] == "feed"
        with StateStore.in_dir(settings.state_dir) as store:
            errors = [row[4] for row in store.fetch_log() if row[1] == "page"]
        assert errors == ["blocked-address"]
        letters = decoded(read_all(kafka_settings, kafka_settings.topic("deadletter"), expected=1))
        # the file: link is dropped by the parser; with no other link the entry cannot have an id
        assert [(d["stage"], d["reason"]) for d in letters] == [("parse", "no-link")]


def test_a_killed_runs_leases_are_given_back_and_a_live_runs_are_kept(
    sample_web: RunningServer, feeds_file: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A run killed with SIGKILL cannot release its leases: every feed it held stayed out of reach of the
    next runs for the lease's length (10 minutes), which polled nothing and did not say why."""
    import os
    import signal
    import subprocess
    import sys

    from newswire.live import worker_id

    settings = pipeline_settings(kafka_settings, tmp_path / "state")
    feeds = read_feed_list(feeds_file)
    broken = next(f.url for f in feeds if f.url.endswith("/feeds/broken.xml"))
    others = [f.url for f in feeds if f.url != broken]
    killed = subprocess.run(
        [sys.executable, "-c", (
            "import datetime, os, pathlib, sys\n"
            "from newswire.connectors.state import StateStore\n"
            "from newswire.contract import utc_now\n"
            "from newswire.live import worker_id\n"
            "store = StateStore.in_dir(pathlib.Path(sys.argv[1]))\n"
            "store.register_feeds((url, None) for url in sys.argv[2:])\n"
            "store.lease_due(sys.argv[2:], owner=worker_id(), now=utc_now(), lease_for=datetime.timedelta(minutes=10))\n"
            "os.kill(os.getpid(), 9)\n"
        ), str(settings.state_dir), *others],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with StateStore.in_dir(settings.state_dir) as store:  # a run still going holds the broken feed
            store.register_feeds([(broken, None)])
            held_by = worker_id().replace(f":{os.getpid()}:", f":{alive.pid}:")
            assert store.lease_due([broken], owner=held_by, now=utc_now(), lease_for=timedelta(minutes=10))
        summary = run_once(settings, feeds)
    finally:
        alive.kill()
        alive.wait()
    assert summary.published == 16 and summary.feeds_polled == 3  # the killed run's feeds, not the live one's
    assert summary.feeds_leased == 1 and "1 leased by another run" in summary.line()


def test_an_entry_without_a_link_is_dead_lettered_once_not_at_every_change_of_its_feed(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    """Every poll of a changed feed dead-lettered its link-less entries again: a busy feed sent one
    duplicate dead letter per bad entry per poll, which a consumer could only tell apart by `detail`."""
    from demo.webserver import start_server

    root = tmp_path / "site"
    root.mkdir()
    item = "<item><title>{0}</title><link>__BASE__/{0}</link><description>text of {0}</description></item>"
    nolink = "<item><guid isPermaLink='false'>e5</guid><title>No link</title><description>x</description></item>"

    def write(*names: str) -> None:
        items = "".join(item.format(n) for n in names)
        (root / "feed.xml").write_text(f"<rss version='2.0'><channel><title>F</title>{nolink}{items}</channel></rss>")

    write("a1")
    with start_server(root) as web:
        (root / "feed.xml").write_bytes(web.substitute((root / "feed.xml").read_bytes()))
        feeds = tmp_path / "feeds.txt"
        feeds.write_text(web.url("/feed.xml") + "\n")
        settings = pipeline_settings(kafka_settings, tmp_path / "state")
        first = run_once(settings, read_feed_list(feeds), poll_all=True)
        write("a1", "a2")  # the feed changes: one entry more, the link-less one still there
        (root / "feed.xml").write_bytes(web.substitute((root / "feed.xml").read_bytes()))
        second = run_once(settings, read_feed_list(feeds), poll_all=True)
    assert (first.dead_letters, first.published) == (1, 1)
    assert (second.dead_letters, second.published) == (0, 1)
    letters = decoded(read_all(kafka_settings, kafka_settings.topic("deadletter"), expected=1))
    assert [(letter["reason"], letter["detail"]) for letter in letters] == [("no-link", "entry 'e5': no-link")]


def test_an_entry_with_no_text_anywhere_is_dead_lettered_by_the_extract_stage(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    from demo.webserver import start_server

    root = tmp_path / "site"
    root.mkdir()
    (root / "feed.xml").write_text(
        "<rss version='2.0'><channel><title>F</title><item><link>__BASE__/gone</link></item>"
        "</channel></rss>"
    )  # no title, no description, and the page is a 404
    with start_server(root) as web:
        (root / "feed.xml").write_bytes(web.substitute((root / "feed.xml").read_bytes()))
        feeds = tmp_path / "feeds.txt"
        feeds.write_text(web.url("/feed.xml") + "\n")
        summary = run_once(pipeline_settings(kafka_settings, tmp_path / "state"), read_feed_list(feeds))
    assert (summary.published, summary.dead_letters) == (0, 1)
    (letter,) = decoded(read_all(kafka_settings, kafka_settings.topic("deadletter"), expected=1))
    assert schema_errors(letter, deadletter=True) == []
    assert (letter["stage"], letter["reason"]) == ("extract", "no-text")
    assert letter["detail"] == "page: http-404; the feed entry carries no text either"
    assert letter["url"] == web.url("/gone")
