"""The shipped taxonomy on short news items written for this project, each graded before the tagger was
run on it:

- tests/fixtures/tagging/edge_cases.jsonl (148 items): positives phrased without the country's name,
  civil-military stories in six languages, and the passing mentions and false cues issue 8 lists (and
  their cousins: Russian salad, montaña rusa, 俄罗斯方块, fine china, a crocheted afghan, a boardroom
  coup, a weather report, a list of countries with articles);
- tests/fixtures/tagging/civil_military_feeds.jsonl (233 items): English feed items (headline +
  summary) on civil-military relations, written blind to the taxonomy: coups said without the word,
  troops at home in a civil role, armed forces as political actors; military stories that are not
  civil-military (battles, drills, arms deals, withdrawals); false cues (BTS ARMY, a dressing-room
  mutiny, a general strike);
- tests/fixtures/tagging/russia_feeds.jsonl, china_feeds.jsonl (205 items each) and
  afghanistan_feeds.jsonl (184): English feed items about each country written the same way, most of the positives without the country's name
  (the Kremlin, Lavrov, Nord Stream; Beijing, Zhongnanhai, Xinjiang), with passing mentions (COVID's
  origin, a list of countries, a player's nationality) and false cues (fine china, Moscow, Idaho);
- tests/fixtures/tagging/civil_military_feeds_2.jsonl (150) and china_feeds_2.jsonl (160): a second blind
  round, modelled on real 2020-2021 events in each outlet's style (eval/experiments/blind-round-2/).

The taxonomy was mended on the edge cases and the civil-military, China and Afghanistan items (a candidate
mended on the Russia items lowered held-out F1 and was not shipped: eval/experiments/
russia-china-feed-style/; the second round's sets were measured first, then mended on; the relation words China and Russia gained later were checked on all five
sets, docs/tagging.md), so this is a pin of behaviour, not a measure of quality (that is
eval/tagging_eval.py on the held-out split). Every item must be tagged exactly as graded, except the
mistakes listed in the file's .known.json (for the Russia and China items, the tagger's own account of
each mistake at the time it was pinned), which must still be mistakes: a fix that lands tells you to
take it off the list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from newswire.labelled import evaluate, load_labelled
from newswire.processors.tagging import Tagger, load_taxonomy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tagging"
SETS = {
    "edge_cases": 148,
    "civil_military_feeds": 233,
    "russia_feeds": 205,
    "china_feeds": 205,
    "afghanistan_feeds": 184,
    "civil_military_feeds_2": 150,
    "china_feeds_2": 160,
}


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(load_taxonomy(), embeddings=False)


@pytest.fixture(scope="module")
def all_mistakes(tagger: Tagger) -> dict[str, dict[tuple[str, str], str]]:
    """Each set tagged once for the tests below."""
    return {name: mistakes(tagger, name) for name in SETS}


def mistakes(tagger: Tagger, name: str) -> dict[tuple[str, str], str]:
    slugs = [t.slug for t in tagger.taxonomy.topics]
    items = load_labelled(FIXTURES / f"{name}.jsonl", slugs)
    assert len(items) == SETS[name]
    return {(m.item, m.topic): f"{m.kind} (score {m.score:.2f}, {m.matches})" for m in evaluate(tagger, items).mistakes}


def known(name: str) -> dict[tuple[str, str], str]:
    listed = json.loads((FIXTURES / f"{name}.known.json").read_text(encoding="utf-8"))
    return {(item, topic): why for item, topics in listed.items() for topic, why in topics.items()}


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_item_is_tagged_as_graded_but_the_known_mistakes(
    all_mistakes: dict[str, dict[tuple[str, str], str]], name: str
) -> None:
    unexpected = {key: got for key, got in all_mistakes[name].items() if key not in known(name)}
    assert not unexpected, f"new mistakes on {name}:\n" + "\n".join(f"{k}: {v}" for k, v in unexpected.items())


@pytest.mark.parametrize("name", sorted(SETS))
def test_known_mistakes_are_still_mistakes(all_mistakes: dict[str, dict[tuple[str, str], str]], name: str) -> None:
    got = all_mistakes[name]
    fixed = sorted(key for key in known(name) if key not in got)
    assert not fixed, f"now tagged as graded, take them off {name}.known.json: {fixed}"


def read(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_every_language_and_topic_is_covered() -> None:
    items = read("edge_cases")
    langs = {str(item["id"]).split("-")[0] for item in items}
    assert {"en", "de", "fr", "es", "ru", "zh"} <= langs
    for topic in ("afghanistan", "china", "civil-military", "russia"):
        assert sum(item["topics"][topic] >= 1 for item in items) >= 10, topic
    assert sum("trap" in str(item["id"]) for item in items) >= 50


@pytest.mark.parametrize(
    ("name", "topic", "least"),
    [("civil_military_feeds", "civil-military", (90, 80, 50)), ("russia_feeds", "russia", (100, 50, 50)),
     ("china_feeds", "china", (100, 60, 40)), ("afghanistan_feeds", "afghanistan", (90, 50, 40))],
)
def test_feed_style_sets_have_positives_hard_negatives_and_traps(name: str, topic: str, least: tuple[int, ...]) -> None:
    items = read(name)
    kinds = [str(item["id"]).split("-")[1] for item in items]
    grades = [item["topics"][topic] for item in items]
    assert all(kinds.count(k) >= n for k, n in zip(("pos", "neg", "trap"), least, strict=True))
    assert all((g >= 1) == (k == "pos") for g, k in zip(grades, kinds, strict=True))
