"""Feed discovery from an HTML page: <link rel="alternate">, then common paths."""

from __future__ import annotations

from newswire.processors.discovery import (
    COMMON_PATHS,
    FeedLink,
    candidates,
    common_paths,
    feed_links,
    looks_like_html,
)

PAGE = "https://news.example.test/section/world/"


def page(head: str, body: str = "<p>hello</p>") -> bytes:
    return f"<!DOCTYPE html><html><head><title>x</title>{head}</head><body>{body}</body></html>".encode()


def test_alternate_links_of_every_feed_type_in_document_order_resolved_against_the_page() -> None:
    html = page(
        '<link rel="stylesheet" href="/s.css">'
        '<link rel="alternate" type="application/rss+xml" title="World" href="feed.rss">'
        '<link rel="alternate" type="application/atom+xml" href="/atom.xml">'
        '<link rel="alternate" type="application/feed+json" href="https://cdn.example.test/f.json">'
        '<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">'
        '<link rel="alternate" type="application/rdf+xml" href="/index.rdf">'
    )
    assert feed_links(html, PAGE) == [
        FeedLink("https://news.example.test/section/world/feed.rss", "rss", "World"),
        FeedLink("https://news.example.test/atom.xml", "atom"),
        FeedLink("https://cdn.example.test/f.json", "json"),
        FeedLink("https://news.example.test/index.rdf", "rdf"),
    ]


def test_comment_feeds_go_last_and_attributes_are_case_and_order_insensitive() -> None:
    html = page(
        '<LINK TYPE="application/rss+xml" REL="Alternate" TITLE="Blog &raquo; Comments Feed" HREF="/comments/feed/">'
        "<link href='/feed/' rel='alternate home' type='application/rss+xml; charset=utf-8' title='Blog'/>"
    )
    assert [f.url for f in feed_links(html, PAGE)] == [
        "https://news.example.test/feed/",
        "https://news.example.test/comments/feed/",
    ]
    assert feed_links(html, PAGE)[1].title == "Blog » Comments Feed"


def test_base_href_is_honoured_and_unsafe_or_duplicate_links_are_dropped() -> None:
    html = page(
        '<base href="https://static.example.test/b/">'
        '<link rel="alternate" type="application/rss+xml" href="rss.xml">'
        '<link rel="alternate" type="application/rss+xml" href="https://static.example.test/b/rss.xml">'
        '<link rel="alternate" type="application/rss+xml" href="file:///etc/passwd">'
        '<link rel="alternate" type="application/atom+xml" href="javascript:alert(1)">'
        '<link rel="alternate" type="application/atom+xml" href="data:text/xml,<feed/>">'
        '<link rel="alternate" type="application/atom+xml" href="ftp://example.test/a.xml">'
        '<link rel="alternate" type="application/atom+xml" href="">'
    )
    assert [f.url for f in feed_links(html, PAGE)] == ["https://static.example.test/b/rss.xml"]


def test_links_in_the_body_are_still_found_but_nothing_after_the_scan_limit() -> None:
    late = page("", '<link rel="alternate" type="application/atom+xml" href="/late.xml">')
    assert [f.url for f in feed_links(late, PAGE)] == ["https://news.example.test/late.xml"]
    buried = page("<!--" + "x" * (600 * 1024) + "-->" + '<link rel="alternate" type="application/rss+xml" href="/f">')
    assert feed_links(buried, PAGE) == []


def test_garbage_and_truncated_markup_do_not_raise() -> None:
    assert feed_links(b"\x00\xff\xfe<<<<link rel=", PAGE) == []
    truncated = b'<html><head><link rel="alternate" type="application/rss+xml" href="/a.xml"><link rel="alt'
    assert [f.url for f in feed_links(truncated, PAGE)] == ["https://news.example.test/a.xml"]
    latin = '<html><head><link rel="alternate" type="application/rss+xml" title="Événements" href="/é.xml">'
    found = feed_links(latin.encode("latin-1"), PAGE, "text/html; charset=iso-8859-1")
    assert found[0].title == "Événements" and found[0].url == "https://news.example.test/é.xml"


def test_common_paths_are_on_the_site_root_and_follow_the_links() -> None:
    paths = common_paths("http://127.0.0.1:8080/deep/page.html?x=1")
    assert [p.url for p in paths] == [f"http://127.0.0.1:8080{p}" for p in COMMON_PATHS]
    assert all(p.source == "path" and p.kind == "guess" for p in paths)
    assert common_paths("file:///etc/passwd") == []

    html = page('<link rel="alternate" type="application/rss+xml" href="/rss.xml">')
    found = candidates(html, "https://news.example.test/")
    assert found[0] == FeedLink("https://news.example.test/rss.xml", "rss")
    urls = [f.url for f in found]
    assert len(urls) == len(set(urls)) == len(COMMON_PATHS)  # /rss.xml is not tried twice


def test_looks_like_html() -> None:
    assert looks_like_html(b"anything", "text/html; charset=utf-8")
    assert looks_like_html(b"\xef\xbb\xbf  <!-- hi --><!DOCTYPE html><html>", None)
    assert looks_like_html(b"<html lang=en><head>", "application/octet-stream")
    assert not looks_like_html(b'<?xml version="1.0"?><rss version="2.0">', "application/rss+xml")
    assert not looks_like_html(b"%PDF-1.7", "application/pdf")
