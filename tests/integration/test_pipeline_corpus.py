"""A run over a local web of real news pages (../shared/corpus) served from loopback, feeds in three formats."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from demo.webserver import start_server
from newswire.connectors.kafka import KafkaSettings, Received
from newswire.live import run_once
from newswire.processors.canonical import article_id
from newswire.records import FeedSource
from tests.integration.pipeline_support import decoded, pipeline_settings, schema_errors
from tests.support.corpus_web import require_corpus, start_corpus_web

pytestmark = [pytest.mark.integration, pytest.mark.corpus]

ReadAll = Callable[..., list[Received]]
PAGES = 45

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def _tokens(text: str) -> Counter[str]:
    tokens: list[str] = []
    for word in text.split():
        tokens.extend(_CJK.findall(word) if _CJK.search(word) else [word])
    return Counter(tokens)


def token_f1(got: str, truth: str) -> float:
    a, b = _tokens(got), _tokens(truth)
    common = sum((a & b).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(b.values())
    return 2 * precision * recall / (precision + recall)


def test_real_pages_are_published_once_each_with_good_text(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll
) -> None:
    corpus = require_corpus()
    with start_corpus_web(PAGES, corpus=corpus) as web, start_server(None, "127.0.0.3") as forbidden:
        forbidden.add_route("/internal.html", b"<html><body><p>not for you</p></body></html>")
        inward = forbidden.url("/internal.html")
        web.server.add_route(
            "/feeds/inward.xml",
            f"""<?xml version="1.0"?><rss version="2.0"><channel><title>inward</title>
            <item><title>Inward link</title><link>{inward}</link>
            <description>A feed item pointing at a loopback host that was not allowed.</description></item>
            </channel></rss>""".encode(),
            content_type="application/rss+xml",
        )
        settings = pipeline_settings(kafka_settings, tmp_path / "state")  # allows 127.0.0.1 only
        feeds = [FeedSource(url) for url in [*web.feed_urls, web.server.url("/feeds/inward.xml")]]
        first = run_once(settings, feeds)

        expected_ids = {article_id(url) for url in web.page_urls} | {article_id(inward)}
        assert len(expected_ids) == PAGES + 1
        messages = read_all(kafka_settings, kafka_settings.topic("articles"), expected=PAGES + 1)
        all_bodies = decoded(messages)
        assert Counter(b["id"] for b in all_bodies) == Counter({i: 1 for i in expected_ids})
        assert first.published == PAGES + 1 and first.duplicates == web.entry_count - PAGES
        for body in all_bodies:
            assert schema_errors(body) == [], body["url"]
        (inward_body,) = [b for b in all_bodies if b["url"] == inward]
        assert inward_body["text_source"] == "feed"
        bodies = [b for b in all_bodies if b["url"] != inward]

        truths = web.truth_by_url
        scores = [token_f1(b["text"], truths[b["url"]]) for b in bodies if b["text_source"] == "page"]
        from_page = len(scores)
        assert from_page >= PAGES - 2  # a page may legitimately yield no text; then the feed's text is used
        mean_f1 = sum(scores) / len(scores)
        print(f"corpus run: {PAGES} pages, {from_page} from pages, mean token F1 {mean_f1:.3f}")
        assert mean_f1 >= 0.85

        # topic streams carry exactly the tagged articles
        for slug in ("afghanistan", "russia", "china", "civil-military"):
            tagged = {b["id"] for b in bodies if slug in {t["slug"] for t in b["topics"]}}
            if tagged:
                stream = read_all(kafka_settings, kafka_settings.topic(f"topic.{slug}"), expected=len(tagged))
                assert {m.key.decode() for m in stream} == tagged

        # a repeated poll is answered with conditional requests and publishes nothing
        web.server.clear_requests()
        second = run_once(settings, feeds, poll_all=True)
        assert second.published == 0 and second.feeds_not_modified == 4
        feed_requests = [r for r in web.server.requests if r.path.startswith("/feeds/")]
        assert len(feed_requests) == 4 and all(r.status == 304 for r in feed_requests)
        assert not [r for r in web.server.requests if r.path.startswith("/a/")]
        assert forbidden.requests == []
