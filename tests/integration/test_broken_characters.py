"""Characters no text can hold, in real feeds through the real pipeline (local server, Tansu, SQLite).

One JSON Feed item escaping a lone surrogate ("\\udfff") stopped every run at the message's hash with
an internal error, all feeds' articles unpublished, run after run; one ``&#xD800;`` in an RSS title
lost that feed's other entries. And a defect no stage foresaw in one article stops that article only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from demo.webserver import start_server
from newswire import pipeline
from newswire.connectors.feedlist import read_feed_list
from newswire.connectors.kafka import KafkaSettings, Received
from newswire.live import run_once
from tests.integration.pipeline_support import decoded, pipeline_settings, schema_errors, write_sample_feeds

pytestmark = pytest.mark.integration

ReadAll = Callable[..., list[Received]]


def _site(root: Path) -> None:
    """Two feeds whose links lead nowhere (404): the articles are the entries' own text."""
    (root / "feed.json").write_text(
        '{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": ['
        '{"id": "j1", "url": "__BASE__/j1", "title": "J one \\udfff broken", "content_text": "x \\udfff y"},'
        '{"id": "j2", "url": "__BASE__/j2", "title": "J two \\ud83d\\ude00 fine", "content_text": "fine"}]}'
    )
    (root / "feed.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>R</title>'
        "<item><title>R one &#xD800; broken\x01</title><link>__BASE__/r1</link><description>x</description></item>"
        "<item><title>R two fine</title><link>__BASE__/r2</link><description>y</description></item></channel></rss>"
    )


def test_feeds_with_impossible_characters_publish_every_entry(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    root = tmp_path / "site"
    root.mkdir()
    _site(root)
    with start_server(root) as web:
        for name in ("feed.json", "feed.xml"):
            (root / name).write_bytes(web.substitute((root / name).read_bytes()))
        feeds = tmp_path / "feeds.txt"
        feeds.write_text(f"{web.url('/feed.json')}\n{web.url('/feed.xml')}\n")
        summary = run_once(pipeline_settings(kafka_settings, tmp_path / "state"), read_feed_list(feeds))
    assert summary.published == 4 and summary.feeds_failed == 0 and summary.dead_letters == 0
    assert summary.page_failures == 4  # the links lead nowhere: the entries' text it is
    bodies = {b["title"]: b for b in decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=4))}
    assert sorted(bodies) == ["J one \ufffd broken", "J two \U0001f600 fine", "R one \ufffd broken", "R two fine"]
    for body in bodies.values():
        assert schema_errors(body) == []


def test_an_article_that_cannot_be_built_is_dead_lettered_and_the_run_goes_on(
    sample_web: Any, kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.build_message

    def breaks_on_one(item: Any, *args: Any, **kwargs: Any) -> Any:
        if item.url.endswith("/kabul-airlift.html"):
            raise RuntimeError("a defect no stage foresaw")
        return real(item, *args, **kwargs)

    monkeypatch.setattr(pipeline, "build_message", breaks_on_one)
    feeds = write_sample_feeds(sample_web, tmp_path / "feeds.opml")
    summary = run_once(pipeline_settings(kafka_settings, tmp_path / "state"), read_feed_list(feeds))
    assert summary.published == 15  # the sample's 16 but one
    letters = decoded(read_all(kafka_settings, kafka_settings.topic("deadletter"), expected=2))
    (broken,) = [letter for letter in letters if letter["stage"] == "tag"]
    assert schema_errors(broken, deadletter=True) == []
    assert broken["reason"] == "internal-error" and broken["url"].endswith("/kabul-airlift.html")
    assert broken["detail"].startswith("RuntimeError: a defect no stage foresaw")
