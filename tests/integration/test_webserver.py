"""The local web server of the demo and tests, and the bundled demo sample it serves."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import feedparser
import pytest

from demo.webserver import RunningServer, start_server

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "sample"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text(encoding="utf-8"))


def fetch(
    srv: RunningServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """One raw request: no client-side decompression or caching gets between the test and the server."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sample_server() -> Iterator[RunningServer]:
    with start_server(SAMPLE) as srv:
        yield srv


# ---- conditional GET -------------------------------------------------------------------------------


def test_etag_round_trip_gives_304_without_body(sample_server: RunningServer) -> None:
    status, headers, body = fetch(sample_server, "/feeds/courier.xml")
    assert status == 200 and body
    etag = headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{24}"', etag)

    status, headers304, body = fetch(sample_server, "/feeds/courier.xml", {"If-None-Match": etag})
    assert status == 304
    assert body == b""
    assert headers304["etag"] == etag
    assert "content-length" not in headers304 or headers304["content-length"] == "0"

    # weak comparison and lists are honoured; another tag is not a match
    assert fetch(sample_server, "/feeds/courier.xml", {"If-None-Match": f'"x", W/{etag}'})[0] == 304
    assert fetch(sample_server, "/feeds/courier.xml", {"If-None-Match": '"something-else"'})[0] == 200


def test_last_modified_round_trip_gives_304(sample_server: RunningServer) -> None:
    status, headers, _ = fetch(sample_server, "/feeds/dispatch.xml")
    assert status == 200
    last_modified = headers["last-modified"]
    mtime = int((SAMPLE / "feeds" / "dispatch.xml").stat().st_mtime)
    assert last_modified == formatdate(mtime, usegmt=True)

    assert fetch(sample_server, "/feeds/dispatch.xml", {"If-Modified-Since": last_modified})[0] == 304
    later = formatdate(mtime + 3600, usegmt=True)
    assert fetch(sample_server, "/feeds/dispatch.xml", {"If-Modified-Since": later})[0] == 304
    earlier = formatdate(mtime - 3600, usegmt=True)
    assert fetch(sample_server, "/feeds/dispatch.xml", {"If-Modified-Since": earlier})[0] == 200
    assert fetch(sample_server, "/feeds/dispatch.xml", {"If-Modified-Since": "not a date"})[0] == 200


def test_if_none_match_wins_over_if_modified_since(sample_server: RunningServer) -> None:
    _, headers, _ = fetch(sample_server, "/feeds/continental.rdf")
    both = {"If-None-Match": '"stale"', "If-Modified-Since": headers["last-modified"]}
    assert fetch(sample_server, "/feeds/continental.rdf", both)[0] == 200


def test_changed_content_changes_the_etag(tmp_path: Path) -> None:
    page = tmp_path / "feed.xml"
    page.write_text("<rss version='2.0'><channel><title>one</title></channel></rss>")
    with start_server(tmp_path) as srv:
        _, first, _ = fetch(srv, "/feed.xml")
        page.write_text("<rss version='2.0'><channel><title>two</title></channel></rss>")
        status, second, body = fetch(srv, "/feed.xml", {"If-None-Match": first["etag"]})
    assert status == 200
    assert b"two" in body
    assert second["etag"] != first["etag"]


# ---- gzip ------------------------------------------------------------------------------------------


def test_gzip_only_when_accepted(sample_server: RunningServer) -> None:
    path = "/articles/kabul-airlift.html"
    status, plain_headers, plain = fetch(sample_server, path)
    assert status == 200
    assert "content-encoding" not in plain_headers
    assert plain_headers["vary"] == "Accept-Encoding"

    status, gz_headers, packed = fetch(sample_server, path, {"Accept-Encoding": "gzip, deflate"})
    assert status == 200
    assert gz_headers["content-encoding"] == "gzip"
    assert int(gz_headers["content-length"]) == len(packed) < len(plain)
    assert gzip.decompress(packed) == plain
    assert gz_headers["etag"] != plain_headers["etag"]  # distinct representations, distinct validators

    refused = fetch(sample_server, path, {"Accept-Encoding": "gzip;q=0, identity"})[1]
    assert "content-encoding" not in refused
    # the gzip variant's tag revalidates too
    assert fetch(sample_server, path, {"If-None-Match": gz_headers["etag"]})[0] == 304


# ---- 404, HEAD, methods ----------------------------------------------------------------------------


def test_missing_files_are_404(sample_server: RunningServer) -> None:
    assert fetch(sample_server, "/articles/kremlin-budget-analysis.html")[0] == 404
    assert fetch(sample_server, "/no/such/dir/")[0] == 404


def test_path_traversal_is_404(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    served = tmp_path / "site"
    served.mkdir()
    with start_server(served) as srv, socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        # raw bytes: an HTTP client library would normalise the dots away
        sock.sendall(b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 404")
    assert b"outside" not in reply


def test_head_has_headers_but_no_body(sample_server: RunningServer) -> None:
    with socket.create_connection((sample_server.host, sample_server.port), timeout=5) as sock:
        # raw bytes: http.client never reads a body after HEAD, so it could not see one sent by mistake
        sock.sendall(b"HEAD /feeds/courier.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length and int(length.group(1)) == len(fetch(sample_server, "/feeds/courier.xml")[2])
    assert fetch(sample_server, "/feeds/courier.xml", method="POST")[0] == 405


# ---- __BASE__ and content types --------------------------------------------------------------------


def test_base_placeholder_is_replaced_in_text_files_only(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_bytes(b"<a href='__BASE__/b.html'>b</a>")
    (tmp_path / "blob.bin").write_bytes(b"\x00__BASE__\xff")
    with start_server(tmp_path) as srv:
        html = fetch(srv, "/a.html")[2]
        blob = fetch(srv, "/blob.bin")[2]
        assert html == f"<a href='{srv.base_url}/b.html'>b</a>".encode()
        assert srv.base_url == f"http://127.0.0.1:{srv.port}"
    assert blob == b"\x00__BASE__\xff"


def test_demo_files_are_served_with_the_base_url(sample_server: RunningServer) -> None:
    for path in ("/feeds/courier.xml", "/feeds/dispatch.xml", "/feeds/continental.rdf", "/feeds.txt"):
        body = fetch(sample_server, path)[2]
        assert b"__BASE__" not in body
        assert sample_server.base_url.encode() in body
    assert fetch(sample_server, "/feeds.txt")[2].decode().split() == [
        sample_server.url(f) for f in ("/feeds/courier.xml", "/feeds/dispatch.xml", "/feeds/continental.rdf")
    ] + [sample_server.url("/feeds/broken.xml")]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/feeds/courier.xml", "application/rss+xml"),
        ("/feeds/dispatch.xml", "application/atom+xml"),
        ("/feeds/continental.rdf", "application/rdf+xml"),
        ("/expected.json", "application/json"),
        ("/articles/elektroautos-aus-china.html", "text/html; charset=utf-8"),
        ("/feeds.opml", "text/x-opml"),
    ],
)
def test_content_types(sample_server: RunningServer, path: str, content_type: str) -> None:
    assert fetch(sample_server, path)[1]["content-type"] == content_type


# ---- request log, routes, delay --------------------------------------------------------------------


def test_request_log_records_method_path_headers_status(tmp_path: Path) -> None:
    with start_server(tmp_path) as srv:
        fetch(srv, "/missing.xml?x=1", {"User-Agent": "newswire-test/1", "If-None-Match": '"a"'})
        fetch(srv, "/missing.xml", method="HEAD")
        log = srv.requests
        assert [(r.method, r.path, r.status) for r in log] == [
            ("GET", "/missing.xml?x=1", 404),
            ("HEAD", "/missing.xml", 404),
        ]
        assert log[0].headers["user-agent"] == "newswire-test/1"
        assert log[0].headers["if-none-match"] == '"a"'
        assert log[0].client == "127.0.0.1"
        assert len(srv.requests_for("/missing.xml")) == 2
        srv.clear_requests()
        assert srv.requests == []


def test_routes_serve_bytes_statuses_and_headers(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("from disk")
    with start_server(tmp_path) as srv:
        srv.add_route("/page.html", b"from memory", content_type="text/html; charset=utf-8")
        srv.add_route("/gone", b"gone\n", status=410)
        srv.add_route("/moved", status=301, headers={"Location": "/page.html"})
        srv.add_route("/feed.json", b'{"home": "__BASE__/"}', substitute=True)

        status, headers, body = fetch(srv, "/page.html")
        assert (status, body) == (200, b"from memory")
        assert "etag" in headers and "last-modified" in headers
        assert fetch(srv, "/page.html", {"If-None-Match": headers["etag"]})[0] == 304
        assert fetch(srv, "/gone")[0] == 410
        status, headers, _ = fetch(srv, "/moved")
        assert (status, headers["location"]) == (301, "/page.html")
        assert json.loads(fetch(srv, "/feed.json")[2]) == {"home": srv.base_url + "/"}

        srv.remove_route("/page.html")
        assert fetch(srv, "/page.html")[2] == b"from disk"


def test_routes_only_server_and_delays() -> None:
    with start_server(None, delay=0.3) as srv:
        srv.add_route("/fast", b"x", delay=0.0)
        srv.add_route("/slow", b"y")
        t0 = time.perf_counter()
        assert fetch(srv, "/slow")[0] == 200
        slow = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert fetch(srv, "/fast")[0] == 200
        fast = time.perf_counter() - t0
        assert fetch(srv, "/anything")[0] == 404
    assert slow >= 0.3
    assert fast < 0.3


def test_stop_frees_the_port() -> None:
    srv = start_server(None)
    port = srv.port
    srv.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# ---- the demo feeds --------------------------------------------------------------------------------


@pytest.mark.parametrize("feed", sorted(EXPECTED["feeds"]))
def test_demo_feeds_parse_to_the_expected_entries(sample_server: RunningServer, feed: str) -> None:
    want = EXPECTED["feeds"][feed]
    status, _, body = fetch(sample_server, "/" + feed)
    assert status == 200
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == want["format"]
    assert parsed.feed.title == want["title"]
    assert len(parsed.entries) == want["entries"]
    for entry in parsed.entries:
        assert entry.link.startswith(sample_server.base_url + "/articles/")
        assert entry.title and entry.get("summary") and entry.get("id")
        assert entry.get("published_parsed") or entry.get("updated_parsed")


def test_broken_feed_gives_no_entries(sample_server: RunningServer) -> None:
    for feed in EXPECTED["broken_feeds"]:
        status, _, body = fetch(sample_server, "/" + feed)
        assert status == 200
        parsed = feedparser.parse(body)
        assert parsed.bozo
        assert parsed.entries == []


def test_every_feed_link_resolves_except_the_dead_one(sample_server: RunningServer) -> None:
    linked: dict[str, int] = {}
    for feed in EXPECTED["feeds"]:
        for entry in feedparser.parse(fetch(sample_server, "/" + feed)[2]).entries:
            path = entry.link.removeprefix(sample_server.base_url)
            linked[path] = fetch(sample_server, path)[0]
    dead = {"/" + p for p in EXPECTED["dead_links"]}
    assert {p for p, s in linked.items() if s == 404} == dead
    assert all(s == 200 for p, s in linked.items() if p not in dead)
    # every article of the sample is linked by some feed (the utm variant counts once)
    article_paths = {p.split("?")[0] for p in linked} - dead
    assert article_paths == {"/" + p for p in EXPECTED["articles"]}
    assert any("utm_source=rss" in p for p in linked)


# ---- the sample itself -----------------------------------------------------------------------------


def test_sample_articles_match_expected_json() -> None:
    on_disk = {p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / "articles").glob("*.html")}
    assert on_disk == set(EXPECTED["articles"])
    assert len(on_disk) >= 12
    topics = [tuple(a["topics"]) for a in EXPECTED["articles"].values()]
    for slug in ("afghanistan", "russia", "china", "civil-military"):
        assert (slug,) in topics, f"no article with {slug} alone"
    assert topics.count(()) >= 3
    assert ("afghanistan", "china", "civil-military", "russia") in topics
    assert {a["language"] for a in EXPECTED["articles"].values()} >= {"en", "de", "fr"}
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    for path in EXPECTED["articles"]:
        assert Path(path).name in readme


def test_sample_pages_carry_metadata_and_a_250_to_600_word_body() -> None:
    import trafilatura

    for path, want in EXPECTED["articles"].items():
        page = (SAMPLE / path).read_text(encoding="utf-8")
        assert f'<html lang="{want["language"]}' in page
        for marker in ('name="author"', 'property="article:published_time"', 'property="og:site_name"'):
            assert marker in page, (path, marker)
        extracted = trafilatura.bare_extraction(
            page.replace("__BASE__", "http://127.0.0.1:1"), with_metadata=True
        )
        assert extracted is not None
        doc = extracted if isinstance(extracted, dict) else extracted.as_dict()
        assert doc["author"] == want["author"]
        assert doc["sitename"] == want["site"]
        assert doc["title"] == want["title"]
        words = len(doc["text"].split())
        assert 250 <= words <= 700, (path, words)  # body 250-600 plus the headline and standfirst


# ---- the corpus web (tests/support/corpus_web.py) --------------------------------------------------


@pytest.mark.corpus
def test_corpus_web_serves_real_pages_and_three_feeds() -> None:
    from tests.support.corpus_web import require_corpus, start_corpus_web

    corpus = require_corpus()
    with start_corpus_web(10, corpus=corpus, langs=("en", "de", "zh", "fr", "ru")) as web:
        assert {p.lang for p in web.pages} == {"en", "de", "zh", "fr", "ru"}
        assert len(set(web.ids)) == 10
        assert web.shared_ids and web.tracked_ids & web.shared_ids

        seen: dict[str, int] = {}
        for feed_url, links in web.links_by_feed.items():
            status, headers, body = fetch(web.server, feed_url.removeprefix(web.base_url))
            assert status == 200 and "etag" in headers
            parsed = feedparser.parse(body)
            assert not parsed.bozo, (feed_url, parsed.get("bozo_exception"))
            assert [e.link for e in parsed.entries] == links
            for link in links:
                bare = link.split("?")[0]
                seen[bare] = seen.get(bare, 0) + 1
        assert set(seen) == set(web.page_urls)
        assert sum(seen.values()) == web.entry_count > len(web.pages)

        for url, page in web.page_urls.items():
            raw = gzip.decompress((corpus / "articles" / "html" / f"{page.id}.html.gz").read_bytes())
            status, headers, body = fetch(web.server, url.removeprefix(web.base_url))
            assert status == 200
            assert body == raw  # byte for byte, original charset kept
            assert headers["content-type"] == page.content_type
            truth = (corpus / "articles" / "truth" / f"{page.id}.txt").read_text(encoding="utf-8")
            assert web.truth_by_url[url] == truth
    zh = [p for p in web.pages if p.lang == "zh"]
    assert all(p.charset for p in zh)


def test_corpus_dir_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.corpus_web import corpus_dir

    monkeypatch.setenv("NEWSWIRE_CORPUS", str(tmp_path))
    assert corpus_dir() is None  # no articles/manifest.jsonl there
    (tmp_path / "articles").mkdir()
    (tmp_path / "articles" / "manifest.jsonl").write_text("")
    assert corpus_dir() == tmp_path
