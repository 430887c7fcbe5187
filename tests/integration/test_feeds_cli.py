"""The ``newswire feeds`` commands end to end: import, export, discover, status (the real CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo.webserver import RunningServer
from newswire.connectors.feedlist import read_feed_list
from newswire.connectors.kafka import KafkaSettings
from newswire.connectors.state import StateStore
from newswire.live import run_once
from newswire.records import FeedSource
from tests.integration.pipeline_support import pipeline_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NEWSWIRE = Path(sys.executable).with_name("newswire")

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0"><head><title>reader export</title></head><body>
  <outline text="News">
    <outline type="rss" text="Courier" title="Courier" xmlUrl="https://courier.example.test/rss.xml"/>
    <outline type="rss" text="Dispatch" xmlUrl="https://dispatch.example.test/atom.xml"/>
  </outline>
  <outline type="rss" text="Already" xmlUrl="https://already.example.test/feed"/>
</body></opml>"""


def newswire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NEWSWIRE), *args], capture_output=True, text=True, timeout=60, check=False)


def test_import_into_a_plain_list_and_into_an_opml_list(tmp_path: Path) -> None:
    source = tmp_path / "reader.opml"
    source.write_bytes(OPML)
    plain = tmp_path / "feeds.txt"
    plain.write_text("# my feeds\nhttps://already.example.test/feed")
    done = newswire("feeds", "import", str(source), "--feeds", str(plain))
    assert done.returncode == 0, done.stderr
    assert "imported 2 new feeds" in done.stdout and "1 already listed" in done.stdout
    assert plain.read_text().startswith("# my feeds\nhttps://already.example.test/feed\n")  # comments kept
    assert [f.url for f in read_feed_list(plain)] == [
        "https://already.example.test/feed",
        "https://courier.example.test/rss.xml",
        "https://dispatch.example.test/atom.xml",
    ]
    again = newswire("feeds", "import", str(source), "--feeds", str(plain))
    assert "imported 0 new feeds" in again.stdout

    fresh = tmp_path / "new.opml"  # missing: created, as OPML because of its name
    assert newswire("feeds", "import", str(source), "--feeds", str(fresh)).returncode == 0
    feeds = read_feed_list(fresh)
    assert fresh.read_bytes().startswith(b"<?xml") and len(feeds) == 3
    assert feeds[0] == FeedSource("https://courier.example.test/rss.xml", "Courier")

    bad = tmp_path / "bad.opml"
    bad.write_bytes(b"<opml><body><outline xmlUrl='file:///etc/passwd'/></body></opml>")
    refused = newswire("feeds", "import", str(bad), "--feeds", str(plain))
    assert refused.returncode == 2 and refused.stderr.startswith("newswire: error: ")
    assert "not an http(s) URL" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head>
    <title>My reader</title>
    <ownerName>Ana</ownerName>
    <dateCreated>Mon, 02 Aug 2021 10:00:00 GMT</dateCreated>
  </head>
  <body>
    <!-- folders as the reader exported them -->
    <outline text="World">
      <outline type="rss" text="Already" htmlUrl="https://already.example.test/" xmlUrl="https://already.example.test/feed"/>
    </outline>
    <outline text="Tech">
      <outline type="rss" text="Gadgets" htmlUrl="https://gadgets.example.test/" xmlUrl="https://gadgets.example.test/rss"/>
    </outline>
  </body>
</opml>
"""


def test_import_into_a_nested_opml_list_only_appends_outlines(tmp_path: Path) -> None:
    listed = tmp_path / "nested.opml"
    listed.write_bytes(NESTED)
    add = tmp_path / "add.txt"
    add.write_text("https://already.example.test/feed\nhttps://new.example.test/rss\n")
    done = newswire("feeds", "import", str(add), "--feeds", str(listed))
    assert done.returncode == 0, done.stderr
    assert "imported 1 new feeds" in done.stdout and "1 already listed, 3 in all" in done.stdout
    new_line = b'    <outline type="rss" text="https://new.example.test/rss" xmlUrl="https://new.example.test/rss"/>\n'
    assert listed.read_bytes() == NESTED.replace(b"  </body>", new_line + b"  </body>")  # the rest untouched
    assert [f.url for f in read_feed_list(listed)] == [
        "https://already.example.test/feed",
        "https://gadgets.example.test/rss",
        "https://new.example.test/rss",
    ]

    broken = tmp_path / "broken.opml"
    broken.write_bytes(NESTED[:-20])
    refused = newswire("feeds", "import", str(add), "--feeds", str(broken))
    assert refused.returncode == 2 and refused.stderr.startswith("newswire: error: ")
    assert "not well-formed XML" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert broken.read_bytes() == NESTED[:-20]


def test_export_writes_opml_with_the_titles_the_feeds_gave(
    sample_web: RunningServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    feeds_file = tmp_path / "feeds.txt"
    feeds_file.write_text(f"{sample_web.url('/feeds/courier.xml')}\n{sample_web.url('/feeds/dispatch.xml')}\n")
    settings = pipeline_settings(kafka_settings, tmp_path / "state", fetch_pages=False)
    run_once(settings, read_feed_list(feeds_file))
    done = newswire("feeds", "export", "--feeds", str(feeds_file), "--state-dir", str(settings.state_dir))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.opml"
    out.write_text(done.stdout)
    exported = read_feed_list(out)
    assert [f.url for f in exported] == [f.url for f in read_feed_list(feeds_file)]
    assert exported[0].title == "The Meridian Courier: Top stories"
    to_file = newswire("feeds", "export", "--feeds", str(feeds_file), "-o", str(tmp_path / "x.opml"))
    assert to_file.returncode == 0 and len(read_feed_list(tmp_path / "x.opml")) == 2


def test_discover_names_the_chosen_feed_or_fails_in_one_line(sample_web: RunningServer) -> None:
    page = sample_web.url("/articles/afghan-copper-mine.html")
    done = newswire("feeds", "discover", page, "--allow-host", "127.0.0.1", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["chosen"] == sample_web.url("/feeds/dispatch.xml") and found["format"] == "atom10"
    assert found["candidates"][0] == {
        "url": sample_web.url("/feeds/dispatch.xml"),
        "kind": "atom",
        "title": "Northgate Dispatch",
        "source": "link",
        "tried": "feed",
    }
    text = newswire("feeds", "discover", page, "--allow-host", "127.0.0.1")
    assert f"chosen: {sample_web.url('/feeds/dispatch.xml')} (atom10" in text.stdout

    home = newswire("feeds", "discover", sample_web.url("/"), "--allow-host", "127.0.0.1", "--probes", "3")
    assert home.returncode == 2 and "no feed found" in home.stderr and "3 candidates tried" in home.stderr
    assert home.stdout.count("http-404") == 3  # common paths, tried one after another, at most --probes

    # discovery goes through the same guard as every fetch
    refused = newswire("feeds", "discover", page)
    assert refused.returncode == 2 and "blocked-address" in refused.stderr
    assert newswire("feeds", "discover", "file:///etc/passwd").returncode == 2


def test_status_lists_every_feed_with_its_state_and_counts(
    sample_web: RunningServer, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    feeds_file = tmp_path / "feeds.txt"
    never = "http://never.example.test/feed.xml"
    feeds_file.write_text(f"{sample_web.url('/feeds/courier.xml')}\n{sample_web.url('/feeds/broken.xml')}\n")
    settings = pipeline_settings(kafka_settings, tmp_path / "state", fetch_pages=False)
    run_once(settings, read_feed_list(feeds_file))
    feeds_file.write_text(feeds_file.read_text() + never + "\n")

    done = newswire("feeds", "status", "--json", "--state-dir", str(settings.state_dir), "--feeds", str(feeds_file))
    assert done.returncode == 0, done.stderr
    rows = {r["url"]: r for r in json.loads(done.stdout)}
    ok, broken, new = rows[sample_web.url("/feeds/courier.xml")], rows[sample_web.url("/feeds/broken.xml")], rows[never]
    assert ok["state"] == "ok" and ok["http_status"] == 200 and ok["entries_seen"] == 6 and ok["last_success"]
    assert ok["next_poll_reason"] and ok["next_poll"] > ok["last_poll"]
    assert broken["state"] == "failing" and broken["consecutive_failures"] == 1 and broken["failing_since"]
    assert broken["last_error"].startswith("parse: ") and broken["last_success"] is None
    assert new["state"] == "new" and new["last_poll"] is None
    for key in ("last_poll", "last_success", "http_status", "entries_seen", "consecutive_failures", "next_poll",
                "last_error", "parked", "retry_after_until", "entries_per_day"):
        assert key in ok

    table = newswire("feeds", "status", "--state-dir", str(settings.state_dir), "--feeds", str(feeds_file))
    assert "3 feeds: 1 ok, 1 failing, 0 parked" in table.stdout and "never polled" in table.stdout
    failing = newswire("feeds", "status", "--json", "--failing", "--state-dir", str(settings.state_dir))
    assert [r["url"] for r in json.loads(failing.stdout)] == [sample_web.url("/feeds/broken.xml")]
    with StateStore.in_dir(settings.state_dir) as store:
        assert len(store.feeds()) == 2

    missing = newswire("feeds", "status", "--state-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no state store" in missing.stderr
