"""Replay of WARC archives through the pipeline: real Tansu broker, WARCs written by the tests themselves."""

from __future__ import annotations

import gzip
import io
import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from demo.webserver import Route, RunningServer, start_server
from newswire.config import Settings
from newswire.connectors.feedlist import read_feed_list
from newswire.connectors.kafka import KafkaSettings, Received
from newswire.connectors.state import StateStore
from newswire.connectors.warc_reader import ScanStats, scan
from newswire.connectors.warc_writer import WarcArchive
from newswire.live import run_once
from newswire.pipeline import RunSummary
from newswire.processors.canonical import article_id, canonical_url
from newswire.records import FetchResult, PublishedRow
from newswire.replay import ReplayError, replay
from tests.integration.pipeline_support import decoded, pipeline_settings, schema_errors, write_sample_feeds

pytestmark = pytest.mark.integration

ReadAll = Callable[..., list[Received]]
SettingsFor = Callable[..., KafkaSettings]

D1 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
FEED_X = "http://x.test/feed.xml"
FEED_Y = "http://y.test/feed.xml"


# -- building archives --------------------------------------------------------------------------------


def rss(title: str, items: Sequence[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 document; items are (link, title, description)."""
    parts = [
        f"<item><title>{t}</title><link>{link.replace('&', '&amp;')}</link><guid>{link.replace('&', '&amp;')}</guid>"
        f"<description>{d}</description><pubDate>Fri, 01 Mar 2024 08:00:00 GMT</pubDate></item>"
        for link, t, d in items
    ]
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>http://example.test/</link><description>test feed</description>{''.join(parts)}</channel></rss>"
    ).encode()


def page(title: str, topic_sentence: str = "") -> bytes:
    """An article page trafilatura extracts: a title and several paragraphs of running text."""
    paragraphs = "".join(
        f"<p>{title} paragraph {n}: the council met on Tuesday to discuss the harbour budget, the new ferry "
        f"timetable and the repairs to the old sea wall, which residents say have been delayed for years. "
        f"{topic_sentence}</p>"
        for n in range(1, 6)
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="author" content="Ann Writer"></head><body><nav><a href="/">Home</a></nav>'
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>(c) Example</footer></body></html>"
    ).encode()


def fetched(uri: str, body: bytes, when: datetime, content_type: str) -> FetchResult:
    return FetchResult(uri, uri, 200, {"content-type": content_type}, body, when)


Kind = Literal["feed", "page"]


def our_warc(directory: Path, records: Sequence[tuple[str, bytes, datetime, Kind]]) -> Path:
    """An archive written by the live writer; records are (uri, body, date, kind) in file order."""
    with WarcArchive(directory) as archive:
        for uri, body, when, kind in records:
            ctype = "application/rss+xml" if kind == "feed" else "text/html; charset=utf-8"
            archive.write(fetched(uri, body, when, ctype), kind)
    (path,) = directory.glob("*.warc.gz")
    return path


def gzip_members(data: bytes) -> list[bytes]:
    import zlib

    members, offset = [], 0
    while offset < len(data):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        inflater.decompress(data[offset:])
        end = len(data) - len(inflater.unused_data)
        members.append(data[offset:end])
        offset = end
    return members


def replay_settings(kafka: KafkaSettings, state_dir: Path, **overrides: Any) -> Settings:
    return pipeline_settings(kafka, state_dir, **overrides)


def articles(read_all: ReadAll, kafka: KafkaSettings, expected: int) -> list[tuple[Received, dict[str, Any]]]:
    messages = read_all(kafka, kafka.topic("articles"), expected=expected)
    return list(zip(messages, decoded(messages), strict=True))


def id_of(link: str) -> str:
    identifier: str = article_id(canonical_url(link))
    return identifier


# -- a live run's archive -----------------------------------------------------------------------------


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("processed_at", "replayed")}


def test_a_live_runs_archive_replays_to_the_same_messages_and_twice_to_identical_ones(
    sample_web: RunningServer, kafka_settings: KafkaSettings, settings_for: SettingsFor, tmp_path: Path,
    read_all: ReadAll,
) -> None:
    feeds_file = tmp_path / "feeds.opml"
    write_sample_feeds(sample_web, feeds_file)
    live_settings = pipeline_settings(kafka_settings, tmp_path / "state")
    live = run_once(live_settings, read_feed_list(feeds_file))
    assert live.published == 16
    live_bodies = {b["id"]: b for b in decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=16))}
    archive = live_settings.archive_path
    assert list(archive.glob("*.warc.gz"))

    sample_web.clear_requests()
    runs = []
    for _ in range(2):
        kafka = settings_for(kafka_settings.bootstrap_servers)
        summary = replay(replay_settings(kafka, tmp_path / "replay-state"), [archive])
        assert summary.published == 16 and summary.completed
        assert summary.from_page == live.from_page and summary.from_feed == live.from_feed
        assert summary.dead_letters == 1  # the broken feed, as in the live run
        runs.append((kafka, articles(read_all, kafka, 16)))
    assert sample_web.requests == []  # never touches the network

    first = {b["id"]: b for _, b in runs[0][1]}
    assert first.keys() == live_bodies.keys()
    # An article carried by two feeds in one poll is attributed to the first in the feed file live, and
    # to the first in archive-time order on replay; everything extracted from the page is the same.
    multi = {id_of(sample_web.url("articles/joint-naval-drills.html"))}
    for article_id_, live_body in live_bodies.items():
        body = first[article_id_]
        assert body["replayed"] is True and live_body["replayed"] is False
        assert schema_errors(body) == []
        if article_id_ in multi:
            keys = ("id", "url", "title", "text", "text_source", "content_hash", "word_count", "topics", "language",
                    "site_name", "authors", "fetched_at", "pipeline")
            assert {k: body[k] for k in keys} == {k: live_body[k] for k in keys}
        else:
            assert _comparable(body) == _comparable(live_body), live_body["url"]
    for message, _ in runs[0][1]:
        assert dict(message.headers)["replayed"] == b"true"
        assert message.key is not None

    second = {b["id"]: b for _, b in runs[1][1]}
    assert {k: _comparable(v) for k, v in second.items()} == {k: _comparable(v) for k, v in first.items()}
    # the topic streams carry the replayed messages too
    kafka = runs[0][0]
    tagged = [b for b in first.values() if any(t["slug"] == "china" for t in b["topics"])]
    stream = read_all(kafka, kafka.topic("topic.china"), expected=len(tagged))
    assert sorted(m.key.decode() for m in stream if m.key) == sorted(b["id"] for b in tagged)


def test_a_page_reached_through_redirects_replays_from_its_archived_page(
    kafka_settings: KafkaSettings, settings_for: SettingsFor, tmp_path: Path, read_all: ReadAll
) -> None:
    """The live archive keeps every redirect hop (status and Location), so the replay finds the page
    from the link the feed gave and publishes what the live run published."""
    story = page("Harbour story", "The council approved the new sea wall.")
    routes = {
        "/feed.xml": Route(rss("Harbour news", [("__BASE__/old/story?utm_source=rss", "Harbour story", "Short.")]),
                           substitute=True, content_type="application/rss+xml"),
        "/old/story": Route(status=301, headers={"Location": "/2024/story"}),
        "/2024/story": Route(status=302, headers={"Location": "/articles/story.html"}),
        "/articles/story.html": Route(story, content_type="text/html; charset=utf-8"),
    }
    server = start_server(None, routes=routes)
    try:
        feeds_file = tmp_path / "feeds.txt"
        feeds_file.write_text(server.url("feed.xml") + "\n")
        live_settings = pipeline_settings(kafka_settings, tmp_path / "state")
        live = run_once(live_settings, read_feed_list(feeds_file))
        assert live.published == 1 and live.from_page == 1
        (live_body,) = decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=1))
        assert live_body["text_source"] == "page"
    finally:
        server.stop()
    (warc,) = live_settings.archive_path.glob("*.warc.gz")
    hops = [(r.uri, r.status, r.headers.get("location")) for r in scan(warc, ScanStats()) if 300 <= r.status < 400]
    assert hops == [  # the live run fetches the canonical URL (tracking parameters dropped)
        (server.url("old/story"), 301, server.url("2024/story")),
        (server.url("2024/story"), 302, server.url("articles/story.html")),
    ]

    kafka = settings_for(kafka_settings.bootstrap_servers)
    summary = replay(replay_settings(kafka, tmp_path / "replay-state"), [warc])
    assert summary.published == 1 and summary.from_page == 1 and summary.from_feed == 0
    ((_, body),) = articles(read_all, kafka, 1)
    assert _comparable(body) == _comparable(live_body)


# -- snapshots of one feed ----------------------------------------------------------------------------


def test_dated_snapshots_with_overlapping_items_replay_each_item_once(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    a, b, c, d, e = (f"http://news.test/story/{n}" for n in "abcde")
    snapshots = [
        (D1, [(a, "A", "alpha first"), (b + "?utm_source=rss&utm_medium=feed", "B", "bravo first"), (c, "C", "charlie first")]),
        (D2, [(b, "B", "bravo later"), (c, "C", "charlie later"), (d, "D", "delta first")]),
        (D3, [(c, "C", "charlie last"), (d, "D", "delta later"), (e, "E", "echo first")]),
    ]
    feedless = "http://other.test/column.html"
    records: list[tuple[str, bytes, datetime, Kind]] = [
        (FEED_X, rss("X news", items), when, "feed") for when, items in snapshots
    ]
    # written out of time order: replay orders by WARC-Date; a later copy identical to the first is not parsed again
    records = [records[2], records[0], records[1], (FEED_X, records[0][1], D2 + timedelta(hours=1), "feed")]
    records.append((b, page("Bravo page", "Kabul airport reopened as Afghanistan talks resumed. The Taliban government in Kabul said flights to Afghanistan would restart next week, and Afghan officials met envoys about aid to Afghanistan."), D1 + timedelta(minutes=1), "page"))
    records.append((feedless, page("A column"), D2, "page"))
    path = our_warc(tmp_path / "arch", records)

    summary = replay(replay_settings(kafka_settings, tmp_path / "state"), [path])
    assert summary.published == 6
    assert (summary.from_page, summary.from_feed) == (2, 4)
    assert summary.duplicates == 4  # b, c, c, d again in later snapshots
    assert summary.feeds_polled == 3 and summary.feeds_unchanged == 1
    assert summary.records_read == 6 + 1  # + warcinfo

    got = articles(read_all, kafka_settings, 6)
    by_id = {body["id"]: body for _, body in got}
    assert sorted(by_id) == sorted(id_of(u) for u in (a, b, c, d, e, feedless))
    assert len(got) == 6
    # first occurrence in archive-time order wins
    assert by_id[id_of(a)]["summary"] == "alpha first" and by_id[id_of(a)]["text_source"] == "feed"
    assert by_id[id_of(c)]["summary"] == "charlie first"
    assert by_id[id_of(c)]["fetched_at"] == "2024-03-01T09:00:00Z"
    assert by_id[id_of(d)]["summary"] == "delta first" and by_id[id_of(d)]["fetched_at"] == "2024-03-02T09:00:00Z"
    # the page of b is found although the feed's link carries tracking parameters
    bravo = by_id[id_of(b)]
    assert bravo["text_source"] == "page" and bravo["title"] == "Bravo page"
    assert bravo["original_url"].endswith("utm_medium=feed") and bravo["url"] == b
    assert bravo["fetched_at"] == "2024-03-01T09:01:00Z"
    assert [t["slug"] for t in bravo["topics"]] == ["afghanistan"]
    column = by_id[id_of(feedless)]
    assert column["feed"] is None and column["text_source"] == "page" and column["guid"] is None
    for message, body in got:
        assert schema_errors(body) == [] and body["replayed"] is True
        assert dict(message.headers)["replayed"] == b"true"
    assert len(read_all(kafka_settings, kafka_settings.topic("topic.afghanistan"), expected=1)) == 1


# -- selection ----------------------------------------------------------------------------------------


@pytest.fixture
def two_feeds_archive(tmp_path: Path) -> Path:
    """Feeds X and Y, one snapshot a day (D1, D2, D3), a page of x2 archived after D3, feedless pages."""
    x = {n: f"http://x.test/{n}" for n in ("x1", "x2", "x3")}
    y = {n: f"http://y.test/{n}" for n in ("y1", "y2", "y3")}
    records: list[tuple[str, bytes, datetime, Kind]] = [
        (FEED_X, rss("X", [(x["x1"], "x1", "x one")]), D1, "feed"),
        (FEED_Y, rss("Y", [(y["y1"], "y1", "y one")]), D1, "feed"),
        ("http://pages.test/f1", page("Feedless one"), D1, "page"),
        (FEED_X, rss("X", [(x["x1"], "x1", "x one"), (x["x2"], "x2", "x two")]), D2, "feed"),
        (FEED_Y, rss("Y", [(y["y2"], "y2", "y two")]), D2, "feed"),
        ("http://pages.test/f2", page("Feedless two"), D2, "page"),
        (FEED_X, rss("X", [(x["x2"], "x2", "x two"), (x["x3"], "x3", "x three")]), D3, "feed"),
        (FEED_Y, rss("Y", [(y["y3"], "y3", "y three")]), D3, "feed"),
        ("http://pages.test/f3", page("Feedless three"), D3, "page"),
        (x["x2"], page("X two page"), D3 + timedelta(hours=1), "page"),
    ]
    return our_warc(tmp_path / "sel", records)


@pytest.mark.parametrize(
    ("since", "until", "feeds", "expected"),
    [
        # feed documents of D2 only; x2's page (archived after the window) is used; f2 by its own date
        (D2, D3, [], {"http://x.test/x1", "http://x.test/x2", "http://y.test/y2", "http://pages.test/f2"}),
        # from D3 on: x2's page is linked by a selected entry, so it is not a feedless page
        (D3, None, [], {"http://x.test/x2", "http://x.test/x3", "http://y.test/y3", "http://pages.test/f3"}),
        # one feed (URL compared canonicalised): its documents and pages, no feedless pages
        (None, None, ["HTTP://X.test:80/feed.xml#top"], {"http://x.test/x1", "http://x.test/x2", "http://x.test/x3"}),
        (None, D2, [FEED_Y], {"http://y.test/y1"}),
    ],
)
def test_since_until_and_feed_select_as_documented(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll,
    since: datetime | None, until: datetime | None, feeds: list[str], expected: set[str],
) -> None:
    summary = replay(
        replay_settings(kafka_settings, tmp_path / "state"), [two_feeds_archive], since=since, until=until, feeds=feeds
    )
    assert summary.published == len(expected)
    got = articles(read_all, kafka_settings, len(expected))
    assert sorted(body["url"] for _, body in got) == sorted(expected)
    for _, body in got:
        if body["url"] == "http://x.test/x2":
            assert body["text_source"] == "page" and body["title"] == "X two page"


def test_a_feed_the_archive_does_not_hold_is_named_in_a_warning(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A typo in --feed replayed nothing and said nothing (exit 0, "0 articles published").
    settings = replay_settings(kafka_settings, tmp_path / "state")
    summary = replay(settings, [two_feeds_archive], feeds=["http://x.test/feed.xm", "HTTP://X.test:80/feed.xml#top"])
    assert summary.published == 3  # the one that is archived still replays
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "newswire.replay"]
    assert warned == ["--feed http://x.test/feed.xm: no feed document in the archive has this URL"]


def test_since_must_be_before_until(kafka_settings: KafkaSettings, tmp_path: Path, two_feeds_archive: Path) -> None:
    with pytest.raises(ReplayError, match="not before"):
        replay(replay_settings(kafka_settings, tmp_path / "state"), [two_feeds_archive], since=D2, until=D1)


def test_replay_summary_does_not_promise_a_next_run_for_what_the_broker_did_not_take() -> None:
    # a replay writes no state, so nothing retries its failures: the user has to replay again
    summary = RunSummary(published=2, publish_failures=3)
    assert "3 NOT published (broker), replay again to publish them" in summary.line(replay=True)
    assert "retried" not in summary.line(replay=True)
    assert "3 NOT published (broker), retried by a run after the poll floor (or --all)" in summary.line()


# -- damage -------------------------------------------------------------------------------------------


def test_truncated_file_and_garbage_record_are_skipped_with_a_count(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    m1, m2, m3, m4 = (f"http://m.test/{n}" for n in ("m1", "m2", "m3", "m4"))
    first = our_warc(
        tmp_path / "one",
        [(FEED_X, rss("M", [(m1, "m1", "m one"), (m2, "m2", "m two")]), D1, "feed"), (m1, page("M one"), D1, "page")],
    )
    members = gzip_members(first.read_bytes())
    garbage = gzip.compress(b"WARC/1.1\r\nthis is not a WARC header at all\r\n\r\n") + b"\x00junk" * 20
    first.write_bytes(b"".join(members[:2]) + garbage + b"".join(members[2:]))  # between the feed and the page
    second = our_warc(tmp_path / "two", [(m3, page("M three"), D2, "page"), (m4, page("M four"), D3, "page")])
    second.write_bytes(second.read_bytes()[:-200])  # a crash mid-write of m4
    archive = tmp_path / "all"
    archive.mkdir()
    first.rename(archive / "a.warc.gz")
    second.rename(archive / "b.warc.gz")

    summary = replay(replay_settings(kafka_settings, tmp_path / "state"), [archive])
    assert summary.malformed_records == 2
    assert "2 malformed records skipped" in summary.line(replay=True)
    assert summary.published == 3
    got = {body["url"]: body for _, body in articles(read_all, kafka_settings, 3)}
    assert sorted(got) == [m1, m2, m3]
    assert got[m1]["text_source"] == "page" and got[m2]["text_source"] == "feed"


# -- foreign archives ---------------------------------------------------------------------------------


def test_a_foreign_uncompressed_warc_is_sniffed_and_decoded(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    """No WARC-Newswire-Kind: feed and page told apart by type and content; chunked+gzip payload undone."""
    story = "http://foreign.test/story"
    html = page("Foreign story")
    packed = gzip.compress(html)
    chunked = b"".join(
        b"%x\r\n" % len(packed[i : i + 300]) + packed[i : i + 300] + b"\r\n" for i in range(0, len(packed), 300)
    ) + b"0\r\n\r\n"
    path = tmp_path / "foreign.warc"
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=False)

        def add(uri: str, payload: bytes, headers: list[tuple[str, str]], status: str = "200 OK") -> None:
            http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                uri, "response", payload=io.BytesIO(payload), http_headers=http,
                warc_headers_dict={"WARC-Date": "2024-03-01T09:00:00Z"},
            )
            writer.write_record(record)

        add("http://foreign.test/rss", rss("Foreign", [(story, "Story", "a story")]), [("Content-Type", "text/xml")])
        add(story, chunked, [("Content-Type", "text/html"), ("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")])
        add("http://foreign.test/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(100), [("Content-Type", "image/png")])
        add("http://foreign.test/gone", b"<html>not here</html>", [("Content-Type", "text/html")], "404 Not Found")

    summary = replay(replay_settings(kafka_settings, tmp_path / "state"), [path])
    assert summary.published == 1 and summary.malformed_records == 0 and summary.dead_letters == 0
    ((_, body),) = articles(read_all, kafka_settings, 1)
    assert body["url"] == story and body["text_source"] == "page" and body["title"] == "Foreign story"
    assert body["feed"]["url"] == "http://foreign.test/rss"


# -- skip published, CLI ------------------------------------------------------------------------------


def test_skip_published_consults_the_live_state_only_when_asked(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, settings_for: SettingsFor, tmp_path: Path,
    read_all: ReadAll,
) -> None:
    state = tmp_path / "state"
    with StateStore.in_dir(state) as store:
        store.mark_published([PublishedRow(id_of("http://x.test/x1"), "http://x.test/x1", FEED_X)], D1)
    everything = replay(replay_settings(kafka_settings, state), [two_feeds_archive], feeds=[FEED_X])
    assert everything.published == 3
    kafka = settings_for(kafka_settings.bootstrap_servers)
    skipping = replay(replay_settings(kafka, state), [two_feeds_archive], feeds=[FEED_X], skip_published=True)
    assert skipping.published == 2 and skipping.duplicates == everything.duplicates + 1
    assert sorted(b["url"] for _, b in articles(read_all, kafka, 2)) == ["http://x.test/x2", "http://x.test/x3"]
    with StateStore.in_dir(state) as store:
        assert store.published_count() == 1  # replay never writes the live state


def test_skip_published_reads_the_state_store_a_url_names(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    # a shared store (docs/scaling.md) is named by --state-url; --state-dir then holds no state.db
    url = f"sqlite:///{tmp_path / 'shared' / 'live.db'}"
    with StateStore(url) as store:
        store.mark_published([PublishedRow(id_of("http://x.test/x1"), "http://x.test/x1", FEED_X)], D1)
    settings = replay_settings(kafka_settings, tmp_path / "empty", state_url=url)
    skipping = replay(settings, [two_feeds_archive], feeds=[FEED_X], skip_published=True)
    assert skipping.published == 2
    assert sorted(b["url"] for _, b in articles(read_all, kafka_settings, 2)) == ["http://x.test/x2", "http://x.test/x3"]


def test_cli_replay_prints_a_summary_and_rejects_bad_input_in_one_line(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    base = [sys.executable, "-m", "newswire.cli", "replay", "--bootstrap-servers", kafka_settings.bootstrap_servers,
            "--topic-prefix", kafka_settings.topic_prefix, "--state-dir", str(tmp_path / "state"), "--workers", "1"]
    done = subprocess.run(
        [*base, str(two_feeds_archive), "--since", "2024-03-03", "--feed", FEED_Y], capture_output=True, text=True, check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("replay: ") and "1 articles published" in done.stdout
    assert "0 malformed records skipped" in done.stdout
    (body,) = decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=1))
    assert body["url"] == "http://y.test/y3"

    for bad, message in (
        ([str(tmp_path / "missing.warc.gz")], "no such file"),
        ([str(two_feeds_archive), "--since", "yesterday"], "not an ISO 8601"),
    ):
        failed = subprocess.run([*base, *bad], capture_output=True, text=True, check=False, timeout=120)
        assert failed.returncode == 2
        assert failed.stderr.count("\n") == 1 and message in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr


def test_verbose_counts_before_or_after_the_command(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    def replay_stderr(*verbosity: str, where: str) -> str:
        command = [sys.executable, "-m", "newswire"]
        options = ["--bootstrap-servers", kafka_settings.bootstrap_servers, "--topic-prefix", kafka_settings.topic_prefix,
                   "--state-dir", str(tmp_path / "state"), "--workers", "1", str(two_feeds_archive)]
        args = [*verbosity, "replay", *options] if where == "before" else ["replay", *verbosity, *options]
        done = subprocess.run([*command, *args], capture_output=True, text=True, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "replay index" not in replay_stderr(where="after")  # quiet by default
    assert "replay index" in replay_stderr("-v", where="before")
    assert "replay index" in replay_stderr("-v", where="after")
    version = subprocess.run([sys.executable, "-m", "newswire", "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("newswire ")


def test_prefect_flow_wraps_replay(
    two_feeds_archive: Path, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    from newswire.flows.replay import run_replay_flow

    settings = replay_settings(kafka_settings, tmp_path / "state", extract_workers=1)
    summary = run_replay_flow([two_feeds_archive], settings, since="2024-03-03T00:00:00Z", feeds=[FEED_X])
    assert summary.published == 2
    got = sorted(b["url"] for b in decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=2)))
    assert got == ["http://x.test/x2", "http://x.test/x3"]
