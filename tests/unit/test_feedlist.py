"""Feed-list files: OPML and plain text, errors that name file and line, OPML export."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswire.connectors.feedlist import FeedListError, read_feed_list, write_opml
from newswire.records import FeedSource

OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions</title></head>
  <body>
    <outline text="World">
      <outline type="rss" text="BBC World" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
      <outline text="Asia">
        <outline type="rss" title="Nikkei Asia" text="nikkei" xmlUrl="https://asia.nikkei.com/rss/feed/nar"/>
      </outline>
    </outline>
    <outline type="link" text="Not a feed" url="https://example.com/"/>
    <outline type="rss" xmlurl="https://www.theguardian.com/world/rss"/>
    <outline type="rss" text="BBC again" xmlUrl="https://FEEDS.bbci.co.uk:443/news/world/rss.xml#dup"/>
  </body>
</opml>
"""


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    return path


def test_opml_nested_outlines_titles_and_dedupe(tmp_path: Path) -> None:
    feeds = read_feed_list(_write(tmp_path, "subs.opml", OPML))
    assert feeds == [
        FeedSource("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC World"),
        FeedSource("https://asia.nikkei.com/rss/feed/nar", "Nikkei Asia"),
        FeedSource("https://www.theguardian.com/world/rss", None),
    ]


def test_duplicate_gives_its_title_to_an_untitled_first_occurrence(tmp_path: Path) -> None:
    opml = (
        '<opml version="1.0"><body><outline xmlUrl="http://a.example/rss"/>'
        '<outline text="A feed" xmlUrl="http://A.example/rss"/></body></opml>'
    )
    assert read_feed_list(_write(tmp_path, "a.opml", opml)) == [FeedSource("http://a.example/rss", "A feed")]


def test_plain_list_with_comments_blank_lines_bom_and_crlf(tmp_path: Path) -> None:
    text = (
        "\ufeff# my feeds\r\n\r\n"
        "https://a.example/feed.xml   # trailing comment\r\n"
        "  https://b.example/rss#section  \r\n"
        "\t# indented comment\r\n"
        "https://a.example/feed.xml\r\n"
        "HTTPS://A.EXAMPLE/feed.xml\r\n"
    )
    feeds = read_feed_list(_write(tmp_path, "feeds.txt", text.encode("utf-8")))
    assert feeds == [FeedSource("https://a.example/feed.xml"), FeedSource("https://b.example/rss#section")]


def test_plain_list_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "feeds.txt", "# header\nhttps://a.example/rss\n\nftp://files.example/feed\n")
    with pytest.raises(
        FeedListError, match=r"feeds\.txt:4: not an http\(s\) URL: 'ftp://files\.example/feed'"
    ):
        read_feed_list(path)


@pytest.mark.parametrize(
    "line", ["not a url", "https://", "http://exa mple.com/rss", "http://a.example:99999/"]
)
def test_plain_list_rejects_non_urls(tmp_path: Path, line: str) -> None:
    with pytest.raises(FeedListError, match=r"feeds\.txt:2:"):
        read_feed_list(_write(tmp_path, "feeds.txt", f"https://ok.example/rss\n{line}\n"))


def test_opml_bad_url_names_its_line(tmp_path: Path) -> None:
    opml = '<opml version="2.0">\n<body>\n\n<outline text="x" xmlUrl="javascript:alert(1)"/>\n</body></opml>'
    with pytest.raises(FeedListError, match=r"bad\.opml:4: not an http\(s\) URL"):
        read_feed_list(_write(tmp_path, "bad.opml", opml))


def test_malformed_opml_names_its_line(tmp_path: Path) -> None:
    opml = '<?xml version="1.0"?>\n<opml version="2.0">\n<body>\n<outline text="x" xmlUrl="http://a.example/"\n</body></opml>'
    with pytest.raises(FeedListError, match=r"broken\.opml:5: not well-formed XML"):
        read_feed_list(_write(tmp_path, "broken.opml", opml))


def test_opml_with_entities_is_refused(tmp_path: Path) -> None:
    opml = '<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY a "b">]>\n<opml><body><outline xmlUrl="http://a.example/&a;"/></body></opml>'
    with pytest.raises(FeedListError, match="refused unsafe XML"):
        read_feed_list(_write(tmp_path, "dtd.opml", opml))


def test_xml_that_is_not_opml(tmp_path: Path) -> None:
    with pytest.raises(FeedListError, match=r"not an OPML document \(root element <rss>\)"):
        read_feed_list(_write(tmp_path, "feed.xml", '<rss version="2.0"><channel/></rss>'))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("folders.opml", '<opml version="2.0"><body><outline text="Empty folder"/></body></opml>'),
        ("comments.txt", "# nothing here yet\n\n"),
        ("empty.txt", ""),
    ],
)
def test_a_list_without_feeds_is_an_error(tmp_path: Path, name: str, content: str) -> None:
    with pytest.raises(FeedListError, match=rf"{name}: no feeds found"):
        read_feed_list(_write(tmp_path, name, content))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FeedListError, match=r"nope\.txt: no such file"):
        read_feed_list(tmp_path / "nope.txt")
    with pytest.raises(FeedListError, match="cannot read feed list"):
        read_feed_list(tmp_path)  # a directory


def test_non_utf8_text_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(FeedListError, match=r"latin\.txt:2: not UTF-8"):
        read_feed_list(_write(tmp_path, "latin.txt", b"https://a.example/rss\nhttps://b.example/caf\xe9\n"))


def test_feed_list_error_is_a_value_error_with_one_line() -> None:
    assert issubclass(FeedListError, ValueError)


def test_write_opml_round_trips(tmp_path: Path) -> None:
    feeds = [
        FeedSource("https://a.example/rss?x=1&y=2", 'Tom & Jerry\'s "news" <daily>'),
        FeedSource("https://b.example/atom", None),
        FeedSource("https://c.example/feed.json", "Новости"),
    ]
    out = tmp_path / "export.opml"
    write_opml(feeds, out, title="My export")
    assert read_feed_list(out) == feeds
    assert "<title>My export</title>" in out.read_text("utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.opml"]  # no temporary file left


def test_write_opml_replaces_existing_file(tmp_path: Path) -> None:
    out = _write(tmp_path, "export.opml", "old content")
    write_opml([FeedSource("https://a.example/rss", "A")], out)
    assert read_feed_list(out) == [FeedSource("https://a.example/rss", "A")]


def test_write_opml_into_missing_directory_is_a_feed_list_error(tmp_path: Path) -> None:
    with pytest.raises(FeedListError, match="cannot write OPML"):
        write_opml([FeedSource("https://a.example/rss")], tmp_path / "missing" / "x.opml")
