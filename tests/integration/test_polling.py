"""Polling behaviour of the live run against real local servers: host gating, identical bodies,
discovery, parking, publisher hints. Real fetcher, real Tansu broker, real SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from demo.webserver import RunningServer
from newswire.connectors.http import Fetcher, FetchSettings
from newswire.connectors.kafka import KafkaSettings, Received
from newswire.connectors.state import StateStore
from newswire.live import run_once
from newswire.polling import Poller, interleave_by_host, poll_feeds
from newswire.records import FeedSource
from tests.integration.pipeline_support import decoded, pipeline_settings
from tests.support.hostile_server import HostileServer, delayed, respond

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ReadAll = Callable[..., list[Received]]


def rss(base: str, count: int, *, stamp: str = "") -> bytes:
    items = "".join(
        f"<item><title>Story {i}{stamp}</title><link>{base}/story/{i}{stamp}</link>"
        f"<description>Text of story {i}: the council met on Tuesday to discuss the harbour.</description></item>"
        for i in range(count)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


def test_interleave_by_host_round_robin_keeps_each_hosts_order() -> None:
    urls = ["http://a.test/1", "http://a.test/2", "http://a.test/3", "http://b.test/1", "http://c.test/1",
            "http://b.test/2", "not a url"]
    assert interleave_by_host(urls) == [0, 3, 4, 6, 1, 5, 2]


def test_a_slow_host_does_not_hold_up_other_hosts() -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
    slow = HostileServer(default=delayed(0.5, respond(body, content_type="application/rss+xml")))
    quick = HostileServer("127.0.0.3", default=respond(body, content_type="application/rss+xml"))
    with slow, quick:
        feeds = [FeedSource(slow.url(f"/slow/{i}.xml")) for i in range(20)]
        feeds += [FeedSource(quick.url(f"/quick/{i}.xml")) for i in range(40)]
        settings = FetchSettings(allow_hosts=frozenset({"127.0.0.1", "127.0.0.3"}), concurrency=4, per_host=2)

        async def go() -> list[str]:
            async with Fetcher(settings) as fetcher:
                polls = await poll_feeds(Poller(fetch=fetcher.fetch), feeds, {}, per_host=2)
                return [p.feed.url for p in polls]

        assert asyncio.run(go()) == [f.url for f in feeds]  # results in list order, whatever the start order
        # Feeds waiting for the slow host must not sit on the fetcher's overall slots: the quick host is
        # done at once, not behind the slow host's twenty (5 s at two at a time).
        quick_done = max(r.at for r in quick.requests) - min(r.at for r in slow.requests)
        assert quick_done < 1.0, quick_done
        assert slow.max_active <= 2 and len(slow.requests) == 20 and len(quick.requests) == 40


def test_a_server_ignoring_conditional_requests_is_not_parsed_again(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    with HostileServer() as server:
        server.route("/feed.xml", respond(rss(server.base_url, 3), content_type="application/rss+xml"))
        settings = pipeline_settings(kafka_settings, tmp_path / "state", fetch_pages=False)
        feeds = [FeedSource(server.url("/feed.xml"))]
        first = run_once(settings, feeds)
        second = run_once(settings, feeds, poll_all=True)
    assert first.published == 3 and first.entries_seen == 3
    assert second.feeds_unchanged == 1 and second.entries_seen == 0 and second.published == 0
    assert "if-none-match" not in server.requests[1].headers  # it sent no validators to send back


def test_a_listed_site_page_leads_to_its_feed_which_is_polled_from_then_on(
    sample_web: RunningServer, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    settings = pipeline_settings(kafka_settings, tmp_path / "state")
    page = sample_web.url("/articles/civilian-control-hearing.html")
    summary = run_once(settings, [FeedSource(page)])
    assert summary.feeds_failed == 0 and summary.published == 6
    messages = decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=6))
    assert {m["feed"]["url"] for m in messages} == {sample_web.url("/feeds/courier.xml")}
    with StateStore.in_dir(settings.state_dir) as store:
        state = store.feed(page)
    assert state is not None and state.discovered_url == sample_web.url("/feeds/courier.xml") and state.etag

    sample_web.clear_requests()
    again = run_once(settings, [FeedSource(page)], poll_all=True)
    assert again.feeds_not_modified == 1
    (request,) = sample_web.requests
    assert request.path == "/feeds/courier.xml" and request.status == 304


def test_repeated_failures_park_a_feed_until_it_recovers(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    with HostileServer() as server:
        server.route("/feed.xml", respond(b"down", 500))
        settings = pipeline_settings(kafka_settings, tmp_path / "state", park_after=2, fetch_pages=False)
        feeds = [FeedSource(server.url("/feed.xml"))]
        first = run_once(settings, feeds)
        assert first.feeds_failing == 1 and first.feeds_parked == 0
        assert run_once(settings, feeds).feeds_polled == 0  # backing off
        second = run_once(settings, feeds, poll_all=True)
        assert second.feeds_parked == 1 and "1 parked" in second.line()
        with StateStore.in_dir(settings.state_dir) as store:
            parked = store.feed(feeds[0].url)
        assert parked is not None and parked.parked and parked.schedule_reason == "parked"
        assert parked.next_poll_at is not None and parked.last_poll_at is not None
        assert parked.next_poll_at - parked.last_poll_at >= timedelta(days=7) * 0.99
        assert run_once(settings, feeds).feeds_polled == 0

        server.route("/feed.xml", respond(rss(server.base_url, 2), content_type="application/rss+xml"))
        back = run_once(settings, feeds, poll_all=True)  # an operator's --all polls parked feeds too
        assert back.published == 2 and back.feeds_parked == 0 and back.feeds_failing == 0
        assert len(server.requests) == 3


def test_publisher_hints_set_the_next_poll(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    with HostileServer() as server:
        ttl_feed = rss(server.base_url, 1).replace(b"<title>t</title>", b"<title>t</title><ttl>180</ttl>")
        server.route("/ttl.xml", respond(ttl_feed, content_type="application/rss+xml"))
        cached = rss(server.base_url, 1, stamp="c")
        server.route(
            "/cached.xml",
            respond(cached, headers={"Cache-Control": "public, max-age=7200"}, content_type="application/rss+xml"),
        )
        server.route("/plain.xml", respond(rss(server.base_url, 1, stamp="p"), content_type="application/rss+xml"))
        settings = pipeline_settings(kafka_settings, tmp_path / "state", fetch_pages=False)
        feeds = [FeedSource(server.url(p)) for p in ("/ttl.xml", "/cached.xml", "/plain.xml")]
        run_once(settings, feeds, interval=timedelta(minutes=30))
    with StateStore.in_dir(settings.state_dir) as store:
        states = {s.url.rsplit("/", 1)[1]: s for s in store.feeds()}
    delays = {}
    for name, state in states.items():
        assert state.next_poll_at is not None and state.last_poll_at is not None
        delays[name] = (state.next_poll_at - state.last_poll_at, state.schedule_reason)
    assert delays["ttl.xml"] == (timedelta(hours=3), "ttl")
    assert delays["cached.xml"] == (timedelta(hours=2), "max-age")
    plain, reason = delays["plain.xml"]
    assert reason == "default" and timedelta(minutes=27) <= plain <= timedelta(minutes=33)  # --interval, jittered


def json_feed(base: str, ids: range) -> bytes:
    items = ",".join(
        f'{{"id": "{i}", "url": "{base}/j/{i}", "title": "Item {i}", '
        f'"content_text": "Body of item {i}: the harbour council met again."}}'
        for i in ids
    )
    return (
        f'{{"version": "https://jsonfeed.org/version/1.1", "title": "JSON news", "items": [{items}]}}'
    ).encode()


def test_a_json_feed_is_polled_and_its_new_entries_feed_the_rate_estimate(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    with HostileServer() as server:
        server.route("/feed.json", respond(json_feed(server.base_url, range(2)), content_type="application/feed+json"))
        settings = pipeline_settings(kafka_settings, tmp_path / "state", fetch_pages=False)
        feeds = [FeedSource(server.url("/feed.json"))]
        first = run_once(settings, feeds)
        with StateStore.in_dir(settings.state_dir) as store:
            before = store.feed(feeds[0].url)
        # two more items: new entries, counted for the feed's publishing rate (the first poll's are backlog)
        server.route("/feed.json", respond(json_feed(server.base_url, range(4)), content_type="application/feed+json"))
        second = run_once(settings, feeds, poll_all=True)
        with StateStore.in_dir(settings.state_dir) as store:
            after = store.feed(feeds[0].url)
    assert first.published == 2 and second.published == 2 and second.duplicates == 2
    messages = decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=4))
    assert {m["title"] for m in messages} == {f"Item {i}" for i in range(4)}
    assert {m["feed"]["title"] for m in messages} == {"JSON news"}
    assert before is not None and after is not None
    assert before.rate_count == 0.0 and after.rate_count == pytest.approx(2.0, rel=1e-3)
    assert after.title == "JSON news" and after.entries_seen == 6
