"""Tagger.explain and its rendering (newswire tag): every reason a topic did or did not score."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswire.explain import explanation_json, explanation_lines, split_title, taxonomy_lines
from newswire.processors.tagging import Tagger, load_taxonomy
from newswire.processors.taxonomy import load_taxonomy_text

TAXONOMY = """
topics:
  - slug: coups
    name: Coups
    dampen: [tennis]
    terms:
      - match: [junta]
        weight: 6
      - match: [coup]
        weight: 4
        requires: [army]
  - slug: rivers
    terms:
      - match: [danube]
        weight: 5
"""


def test_explain_matches_tag_and_names_every_reason() -> None:
    tagger = Tagger(load_taxonomy_text(TAXONOMY), embeddings=False)
    title, text = "Junta tightens grip", "The junta said the coup was over. Nothing about rivers."
    explained = {e.slug: e for e in tagger.explain(title, text)}
    tagged = {t.slug: t for t in tagger.tag(title, text)}
    assert set(tagged) == {"coups"} == {s for s, e in explained.items() if e.tagged}
    coups = explained["coups"]
    assert coups.score == tagged["coups"].score and coups.matches == {"junta": 2}
    assert coups.scorer == "plain" and coups.evidence > 0
    assert list(coups.terms) == ["junta"]
    assert coups.filtered == {"coup": 1}  # 'coup' requires 'army', which the text lacks
    assert not coups.damped
    rivers = explained["rivers"]
    assert (rivers.scorer, rivers.score, rivers.tagged) == ("none", 0.0, False)


def test_explain_reports_damping_and_lists() -> None:
    tagger = Tagger(load_taxonomy_text(TAXONOMY), embeddings=False)
    damped = {e.slug: e for e in tagger.explain("Junta cancels tennis final", "The junta spoke.")}["coups"]
    assert damped.damped
    listed = {e.slug: e for e in tagger.explain("Rivers", "The Rhine, the Danube, the Elbe and the Oder.")}
    assert listed["rivers"].listed == 1.0


def test_shipped_combiners_are_named_as_the_scorer() -> None:
    tagger = Tagger(load_taxonomy(), embeddings=False)
    explained = {e.slug: e for e in tagger.explain("Kremlin rejects sanctions", "Russia said Putin would respond.")}
    assert explained["russia"].tagged and explained["russia"].scorer == "combiner"
    assert explained["russia"].score == next(t.score for t in tagger.tag("Kremlin rejects sanctions",
                                                                         "Russia said Putin would respond."))


def test_rendering() -> None:
    tagger = Tagger(load_taxonomy_text(TAXONOMY), embeddings=False)
    explained = tagger.explain("Junta tightens grip", "The junta said the coup was over.")
    lines = explanation_lines(explained, show_all=False)
    assert lines[0].split()[:3] == ["coups", explained[0].score.__format__(".3f"), "TAGGED"]
    assert any("not counted" in line and "coup 1" in line for line in lines)
    assert not any(line.startswith("rivers") for line in lines)
    assert any(line.startswith("rivers") for line in explanation_lines(explained, show_all=True))
    assert explanation_lines(tagger.explain("Quiet day", "Nothing."), show_all=False)[0].startswith("no topic")
    payload = explanation_json(tagger.version, explained)
    assert payload["topics"] == ["coups"] and payload["scores"][0]["filtered"] == {"coup": 1}
    summary = taxonomy_lines(load_taxonomy_text(TAXONOMY, name="mine"))
    assert summary[0].endswith(": 2 topics") and "coups" in summary[1] and "2 terms" in summary[1]


def test_split_title() -> None:
    assert split_title("\n Headline \nBody one.\nBody two.\n") == ("Headline", "Body one.\nBody two.")
    assert split_title("Only a headline") == ("Only a headline", "")
    assert split_title("  \n") == ("", "")


REASONS = """
topics:
  - slug: russia
    exclude: ["moscow, idaho"]
    terms:
      - match: [russia, moscow]
        weight: 4
      - match: [putin]
        weight: 4
        unless: [poutine]
      - match: [soviet]
        weight: 2
        context: true
      - match: [military]
        weight: 3
        requires: [kremlin]
        label: troops
"""


def test_every_dropped_hit_is_named_by_its_words_and_reason() -> None:
    tagger = Tagger(load_taxonomy_text(REASONS), embeddings=False)
    drops = {e.slug: e for e in tagger.explain(
        "A Soviet-era poster", "Police in Moscow, Idaho said the Putin poutine recipe was military grade."
    )}["russia"].dropped
    assert drops == {
        "inside an excluded phrase": {"moscow": 1},
        "'requires' cue missing or too far": {"military": 1},  # the words of the text, not the label 'troops'
        "an 'unless' cue is present": {"putin": 1},
        "context term, and no other term of the topic": {"soviet": 1},
    }
    dateline = {e.slug: e for e in tagger.explain("Oil rises", "MOSCOW (Reuters) - Oil rose.")}["russia"]
    assert dateline.dropped == {"in a dateline": {"moscow": 1}} and not dateline.tagged
    lines = explanation_lines(tagger.explain("Oil rises", "MOSCOW (Reuters) - Oil rose."), show_all=True)
    assert any(line.strip() == "not counted (in a dateline): moscow 1" for line in lines)


def test_a_word_two_terms_match_is_counted_once_and_the_longest_dropped_hit_wins() -> None:
    tagger = Tagger(load_taxonomy_text("""
topics:
  - slug: china
    exclude: [made in china]
    terms:
      - match: [china]
        weight: 4
      - match: [in china]
        weight: 2
      - match: [army]
        requires: [beijing]
      - match: [army]
        label: army again
        requires: [pla]
"""), embeddings=False)
    drops = {e.slug: e for e in tagger.explain("Toys", "Made in China, by the army.")}["china"].dropped
    assert drops == {"inside an excluded phrase": {"in china": 1}, "'requires' cue missing or too far": {"army": 1}}


def test_taxonomy_check_says_when_the_embeddings_switch_finds_nothing_to_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from newswire.explain import combiner_lines
    from newswire.processors import embeddings

    tagger = Tagger(load_taxonomy_text(TAXONOMY), embeddings=False)
    monkeypatch.delenv("NEWSWIRE_EMBEDDINGS", raising=False)
    assert combiner_lines(tagger) == []  # switched off: nothing to say
    monkeypatch.setenv("NEWSWIRE_EMBEDDINGS", str(tmp_path))
    lines = combiner_lines(tagger)
    assert any("is set, but there is no embedding combiner" in line and str(tmp_path) in line for line in lines)
    monkeypatch.setattr(embeddings, "extra_missing", lambda: "embedding features need the extra: pip install x")
    assert any("pip install x; the keyword tagger is used" in line for line in combiner_lines(tagger))


def test_a_word_another_term_counted_is_not_listed_as_not_counted() -> None:
    tagger = Tagger(load_taxonomy_text("""
topics:
  - slug: cm
    terms:
      - match: [army]
        requires: [flood]
      - match: [army]
        label: army in a coup
        weight: 6
        requires: [coup]
"""), embeddings=False)
    counted = {e.slug: e for e in tagger.explain("Coup fears", "The army took the palace in a coup.")}["cm"]
    assert counted.tagged and counted.matches == {"army": 1} and counted.dropped == {}
    neither = {e.slug: e for e in tagger.explain("Quiet", "The army paraded.")}["cm"]
    assert neither.dropped == {"'requires' cue missing or too far": {"army": 1}}


def test_a_word_inside_a_counted_longer_hit_is_not_listed_as_not_counted() -> None:
    tagger = Tagger(load_taxonomy_text("""
topics:
  - slug: china
    exclude: [south china]
    terms:
      - match: [south china sea]
        weight: 4
      - match: [china]
        weight: 4
"""), embeddings=False)
    sea = {e.slug: e for e in tagger.explain("Patrols", "Ships sailed the south china sea again.")}["china"]
    assert sea.matches == {"south china sea": 1} and sea.dropped == {}
    coast = {e.slug: e for e in tagger.explain("Weather", "Rain on the south china coast.")}["china"]
    assert coast.dropped == {"inside an excluded phrase": {"china": 1}}
