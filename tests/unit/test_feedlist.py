"""Feed-list files: OPML and plain text, errors that name file and line, OPML export."""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from newswire.connectors.feedlist import FeedListError, append_opml, append_plain, read_feed_list, write_opml
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


# What a feed reader exports: a head with owner and dates, folders, htmlUrl, comments, ISO-8859-1.
NESTED = """<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- exported by Reader 3.1 -->
<opml version="2.0">
  <head>
    <title>Zo\u00eb's subscriptions</title>
    <ownerName>Zo\u00eb</ownerName>
    <ownerEmail>zoe@example.org</ownerEmail>
    <dateCreated>Mon, 02 Aug 2021 10:00:00 GMT</dateCreated>
    <dateModified>Tue, 03 Aug 2021 11:30:00 GMT</dateModified>
  </head>
  <body>
    <outline text="World" title="World">
      <outline type="rss" text="BBC World" title="BBC World" htmlUrl="https://www.bbc.co.uk/news/world"
               xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml" category="/news"/>
      <outline type="rss" text="Guardian" htmlUrl="https://www.theguardian.com/world"
               xmlUrl="https://www.theguardian.com/world/rss"/>
    </outline>
    <!-- the feeds I read at work -->
    <outline text="Tech">
      <outline type="rss" text="Ars" htmlUrl="https://arstechnica.com/" xmlUrl="https://feeds.arstechnica.com/arstechnica/index"/>
    </outline>
  </body>
</opml>
""".encode("iso-8859-1")


def _tree(data: bytes) -> ET.Element:
    return ET.fromstring(data, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))


def _same(a: ET.Element, b: ET.Element, tail: bool = True) -> bool:
    """Same tag, attributes, text and tail (the whitespace after it), and the same children, recursively."""
    return (
        (a.tag, a.attrib, a.text) == (b.tag, b.attrib, b.text)
        and (not tail or a.tail == b.tail)
        and len(a) == len(b)
        and all(_same(x, y) for x, y in zip(a, b, strict=True))
    )


def test_append_to_a_nested_opml_keeps_the_document_and_adds_one_outline(tmp_path: Path) -> None:
    path = _write(tmp_path, "nested.opml", NESTED)
    os.chmod(path, 0o640)
    added = append_opml(
        [
            FeedSource("https://FEEDS.bbci.co.uk/news/world/rss.xml", "BBC again"),  # listed already
            FeedSource("https://example.org/new?a=1&b=2", 'Zo\u00eb & "Новости" <daily>'),
        ],
        path,
    )
    assert added == [FeedSource("https://example.org/new?a=1&b=2", 'Zo\u00eb & "Новости" <daily>')]
    result = path.read_bytes()

    # Byte for byte: the old document with one line (indented as its neighbours) before </body>.
    before, after = NESTED.split(b"\n  </body>")
    assert result.startswith(before + b"\n    <outline ") and result.endswith(b"\n  </body>" + after)
    assert result.count(b"\n") == NESTED.count(b"\n") + 1
    assert result.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!-- exported by Reader 3.1 -->')

    old, new = _tree(NESTED), _tree(result)
    assert new.attrib == old.attrib == {"version": "2.0"}
    old_head, new_head = old.find("head"), new.find("head")
    assert old_head is not None and new_head is not None and _same(old_head, new_head)
    assert new.findtext("head/title") == "Zo\u00eb's subscriptions"
    old_body, new_body = old.find("body"), new.find("body")
    assert old_body is not None and new_body is not None
    assert len(new_body) == len(old_body) + 1  # folders, comment, and exactly one new outline
    for number, (was, now) in enumerate(zip(old_body, new_body[:-1], strict=True), start=1):
        assert _same(was, now, tail=number < len(old_body))  # the last one's tail now indents the new one
    assert [f.attrib.get("text") for f in new_body.iter("outline") if "xmlUrl" not in f.attrib] == ["World", "Tech"]
    assert new_body[-1].tag == "outline" and new_body[-1].attrib == {
        "type": "rss",
        "text": 'Zo\u00eb & "Новости" <daily>',
        "title": 'Zo\u00eb & "Новости" <daily>',
        "xmlUrl": "https://example.org/new?a=1&b=2",
    }
    assert len(list(new.iter("outline"))) == len(list(old.iter("outline"))) + 1

    assert read_feed_list(path) == [
        FeedSource("https://feeds.bbci.co.uk/news/world/rss.xml", "BBC World"),
        FeedSource("https://www.theguardian.com/world/rss", "Guardian"),
        FeedSource("https://feeds.arstechnica.com/arstechnica/index", "Ars"),
        FeedSource("https://example.org/new?a=1&b=2", 'Zo\u00eb & "Новости" <daily>'),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested.opml"]  # no temporary file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the file's permissions are kept
    assert append_opml([FeedSource("https://example.org/new?b=2&a=1")], path) == []  # nothing new: untouched
    assert path.read_bytes() == result


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (  # compact, one line: stays so
            '<opml><body><outline xmlUrl="http://a.example/"/></body><!-- end --></opml>',
            '<opml><body><outline xmlUrl="http://a.example/"/>{new}</body><!-- end --></opml>',
        ),
        (  # tabs and CRLF
            '<opml>\r\n\t<body>\r\n\t\t<outline xmlUrl="http://a.example/"/>\r\n\t</body>\r\n</opml>\r\n',
            '<opml>\r\n\t<body>\r\n\t\t<outline xmlUrl="http://a.example/"/>\r\n\t\t{new}\r\n\t</body>\r\n</opml>\r\n',
        ),
        (  # an empty body, written <body/>
            '<opml>\n  <head/>\n  <body note="a/>b" />\n</opml>\n',
            '<opml>\n  <head/>\n  <body note="a/>b">\n    {new}\n  </body>\n</opml>\n',
        ),
        (  # an empty body with only whitespace in it
            "<opml>\n<body>\n</body>\n</opml>",
            "<opml>\n<body>\n  {new}\n</body>\n</opml>",
        ),
    ],
)
def test_append_opml_follows_the_layout_of_the_file(tmp_path: Path, original: str, expected: str) -> None:
    path = _write(tmp_path, "list.opml", original)
    assert append_opml([FeedSource("https://n.example/rss")], path) == [FeedSource("https://n.example/rss")]
    new = '<outline type="rss" text="https://n.example/rss" xmlUrl="https://n.example/rss"/>'
    assert path.read_bytes() == expected.format(new=new).encode("utf-8")
    assert FeedSource("https://n.example/rss") in read_feed_list(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('<opml><body><outline xmlUrl="http://a.example/"/>\n', r"bad\.opml:2: not well-formed XML"),
        ('<!DOCTYPE opml [<!ENTITY a "b">]><opml><body/></opml>', "refused unsafe XML"),
        ('<opml><head/><outline xmlUrl="http://a.example/"/></opml>', "no <body> element"),
    ],
)
def test_append_opml_leaves_a_bad_file_untouched(tmp_path: Path, content: str, message: str) -> None:
    path = _write(tmp_path, "bad.opml", content)
    with pytest.raises(FeedListError, match=message):
        append_opml([FeedSource("https://n.example/rss")], path)
    assert path.read_text("utf-8") == content
    with pytest.raises(FeedListError, match=r"missing\.opml: no such file"):
        append_opml([FeedSource("https://n.example/rss")], tmp_path / "missing.opml")


def test_append_plain_keeps_the_text_and_its_line_endings(tmp_path: Path) -> None:
    path = _write(tmp_path, "feeds.txt", b"\xef\xbb\xbf# mine\r\n\r\nhttps://a.example/rss   # A")
    added = append_plain([FeedSource("https://A.example/rss"), FeedSource("https://b.example/rss", "B")], path)
    assert added == [FeedSource("https://b.example/rss", "B")]
    assert path.read_bytes() == b"\xef\xbb\xbf# mine\r\n\r\nhttps://a.example/rss   # A\r\nhttps://b.example/rss\r\n"
    fresh = tmp_path / "new.txt"
    assert append_plain([FeedSource("https://c.example/rss")], fresh) == [FeedSource("https://c.example/rss")]
    assert fresh.read_bytes() == b"https://c.example/rss\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.txt", "new.txt"]
