"""newswire taxonomy eval: a user's labelled items read with clear errors, and measured with the
built-in evaluation's figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from newswire.labelled import LabelsError, evaluate, load_labelled
from newswire.processors.tag_metrics import bootstrap_f1, f1_of, topic_stats, wilson
from newswire.processors.tagging import Tagger, load_taxonomy

SLUGS = ["afghanistan", "china", "civil-military", "russia"]


def write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8"
    )
    return path


def test_list_and_mapping_grades_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"id": "a", "title": "T", "text": "x", "topics": ["china"]},
        "",
        {"text": "y", "lead": "L", "topics": {"russia": 2, "china": 0}, "traps": ["china"]},
    )
    a, b = load_labelled(path, SLUGS)
    assert (a.name, a.title, a.lead) == ("a", "T", None)
    assert a.grades == {"afghanistan": 0, "china": 1, "civil-military": 0, "russia": 0}
    assert (b.name, b.lead, b.grades["russia"], b.grades["china"], b.traps) == ("line 3", "L", 2, 0, {"china"})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "items.jsonl:1: not JSON"),
        ('["a list"]', "items.jsonl:1: each line must be a JSON object"),
        ({"topics": []}, "items.jsonl:1: needs a 'text' string"),
        ({"text": "x"}, "items.jsonl:1: needs 'topics'"),
        ({"text": "x", "topics": {"china": 3}}, "grade of 'china' must be 0, 1 or 2, got 3"),
        ({"text": "x", "topics": {"china": True}}, "grade of 'china' must be 0, 1 or 2"),
        ({"text": "x", "topics": "china"}, "'topics' must be a list of topics or a mapping"),
        ({"text": "x", "topics": ["iran"]}, "topic 'iran' is not in the taxonomy"),
        ({"text": "x", "topics": [], "traps": ["iran"]}, "'traps' must be a list of topics of the taxonomy"),
    ],
)
def test_bad_lines_name_the_file_and_line(line: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match=re.escape(message)):
        load_labelled(write(tmp_path, line), SLUGS)


def test_an_empty_or_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="no labelled items"):
        load_labelled(write(tmp_path, ""), SLUGS)
    with pytest.raises(LabelsError, match="cannot read"):
        load_labelled(tmp_path / "missing.jsonl", SLUGS)


def test_evaluate_counts_and_lists_mistakes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"id": "xi", "title": "Xi opens party congress", "topics": {"china": 2},
         "text": "Chinese President Xi Jinping opened the Communist Party congress in Beijing."},
        {"id": "bvb", "title": "Borussia Dortmund win", "text": "Dortmund beat Bayern 3-1.", "topics": [],
         "traps": ["russia"]},
        {"id": "kremlin", "title": "Kremlin rejects talks", "topics": ["russia"], "text":
         "The Kremlin said Russia would not negotiate while sanctions remain, Putin's spokesman said."},
        {"id": "coffee", "title": "Coffee prices rise", "text": "Harvest worries in Brazil.", "topics": ["china"]},
    )
    tagger = Tagger(load_taxonomy(), embeddings=False)
    evaluation = evaluate(tagger, load_labelled(path, SLUGS))
    results, mistakes = evaluation.results, evaluation.mistakes
    china, russia = results["china"], results["russia"]
    assert (china["positives"], china["tp"], china["fn"], china["fp"], china["grade2"]) == (2, 1, 1, 0, 1)
    assert china["recall_grade2"] == 1.0 and china["f1"] == pytest.approx(2 / 3)
    assert (russia["tp"], russia["fp"], russia["traps"], russia["traps_tagged"]) == (1, 0, 1, 0)
    assert [(m.topic, m.item, m.kind, m.grade, m.score) for m in mistakes] == [
        ("china", "coffee", "missed", 1, 0.0)
    ]
    # The sweep at a topic's own threshold gives the summary's figures; lower cuts never recall less.
    for slug in SLUGS:
        threshold = tagger.taxonomy.topic(slug).threshold
        (row,) = [r for r in evaluation.sweep[slug] if abs(r[0] - threshold) < 1e-9]
        assert row[1:] == (results[slug]["precision"], results[slug]["recall"], results[slug]["f1"])
        recalls = [r[2] for r in evaluation.sweep[slug]]
        if results[slug]["positives"]:
            assert recalls == sorted(recalls, reverse=True)
        else:  # no positives: recall and F1 undefined at every cut
            assert recalls == [None] * len(recalls) and {r[3] for r in evaluation.sweep[slug]} == {None}
    assert [r[0] for r in evaluation.sweep["china"]] == [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65,
                                                        0.7, 0.75, 0.8, 0.85]


def test_metrics_on_hand_computed_cases() -> None:
    assert f1_of(0, 3, 2) == 0.0 and f1_of(8, 2, 2) == pytest.approx(0.8)
    lo, hi = wilson(8, 10)  # textbook Wilson interval for 8/10
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)
    assert wilson(0, 0) == (0.0, 1.0)
    st = topic_stats("t", [(2, True, False), (1, False, False), (0, True, True), (0, False, True)])
    assert (st.n, st.tp, st.fn, st.fp, st.neg, st.pos2, st.tp2, st.traps, st.traps_tagged) == (
        4, 1, 1, 1, 2, 1, 1, 2, 1
    )
    lo, hi = bootstrap_f1(st.pairs)
    assert 0.0 <= lo <= f1_of(st.tp, st.fp, st.fn) <= hi <= 1.0
    assert bootstrap_f1(st.pairs) == (lo, hi)  # seeded


def test_the_table_says_n_a_where_no_ratio_is_defined() -> None:
    from newswire.processors.tag_metrics import summarise, table_lines

    nothing = summarise(topic_stats("iran", [(0, False, False), (0, False, True)]))
    found = summarise(topic_stats("china", [(2, True, False), (0, True, False), (1, False, False)]))
    _, row_nothing, row_found = table_lines({"iran": nothing, "china": found})
    cells = row_nothing.split()  # topic n pos g2 P [ci] R [ci] F1 [ci] R@g2 ...
    assert cells[4] == "n/a" and cells[6] == "n/a" and cells[8] == "n/a" and cells[10] == "n/a"
    cells = row_found.split()
    assert (cells[4], cells[6], cells[8]) == ("0.50", "0.50", "0.50")
