"""newswire taxonomy eval: a figure nothing defines is null in JSON and n/a in text everywhere (table,
sweep), an F1 interval is given only with enough positives, contradictory or ambiguous label files are
one-line errors, and a mistake of an untitled item shows the start of its text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from newswire.labelled import LabelsError, evaluate, load_labelled
from newswire.processors.tag_metrics import MIN_POSITIVES_F1_CI, rates, summarise, table_lines, topic_stats
from newswire.processors.tagging import Tagger, load_taxonomy
from tests.support.cli import newswire, one_line_error

SLUGS = ["afghanistan", "china", "civil-military", "russia"]
CI_KEYS = ("precision_ci", "recall_ci", "f1_ci", "recall_grade2_ci", "neg_tagged_ci")


def write(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8"
    )
    return path


# -- undefined figures ---------------------------------------------------------------------------


def test_undefined_figures_and_their_intervals_are_none() -> None:
    nothing = summarise(topic_stats("t", [(0, False, False), (0, False, True)]))  # no positives, none tagged
    assert [nothing[k] for k in ("precision", "recall", "f1", "recall_grade2")] == [None] * 4
    assert nothing["neg_tagged"] == 0.0 and nothing["neg_tagged_ci"] is not None
    assert [nothing[k] for k in CI_KEYS[:4]] == [None] * 4

    wrong = summarise(topic_stats("t", [(0, True, False), (0, False, False)]))  # tagged, but no positives
    assert wrong["precision"] == 0.0 and wrong["precision_ci"] is not None
    assert (wrong["recall"], wrong["recall_ci"], wrong["f1"], wrong["f1_ci"]) == (None, None, None, None)

    missed = summarise(topic_stats("t", [(1, False, False)] * 6))  # positives, none tagged, no negatives
    assert (missed["precision"], missed["precision_ci"]) == (None, None)
    assert missed["recall"] == 0.0 and missed["f1"] == 0.0 and missed["f1_ci"] is not None
    assert (missed["neg_tagged"], missed["neg_tagged_ci"]) == (None, None)
    assert rates(topic_stats("t", [(1, False, False)])) == (None, 0.0, 0.0)
    assert rates(topic_stats("t", [(0, True, False)])) == (0.0, None, None)


def test_the_table_says_n_a_for_undefined_figures_and_intervals() -> None:
    wrong = summarise(topic_stats("iran", [(0, True, False), (0, False, False)]))
    missed = summarise(topic_stats("china", [(1, False, False)] * 6))
    _, row_wrong, row_missed = table_lines({"iran": wrong, "china": missed})
    cells = row_wrong.split()  # topic n pos g2 P [ci] R [ci] F1 [ci] R@g2 [ci] neg% [ci] traps
    assert cells[4] == "0.00" and cells[6:12] == ["n/a"] * 6 and cells[12] == "50.0%"
    cells = row_missed.split()
    assert cells[4:6] == ["n/a", "n/a"] and cells[6] == "0.00" and cells[8] == "0.00"
    assert cells[12:14] == ["n/a", "n/a"]
    assert len(row_wrong) == len(row_missed)  # n/a keeps the columns


# -- the F1 interval -------------------------------------------------------------------------------


def test_no_f1_interval_with_few_positives() -> None:
    assert MIN_POSITIVES_F1_CI == 5
    three = summarise(topic_stats("t", [(1, True, False)] * 3 + [(0, False, False)] * 3))
    assert three["f1"] == 1.0 and three["f1_ci"] is None  # a bootstrap would say [1.00, 1.00]
    assert three["precision_ci"] == three["recall_ci"] and three["recall_ci"][0] == pytest.approx(0.44, abs=0.01)
    row = table_lines({"t": three})[1].split()
    assert (row[8], row[9]) == ("1.00", "n/a")

    five = summarise(topic_stats("t", [(1, True, False)] * 4 + [(1, False, False)] + [(0, True, False)] * 2))
    lo, hi = five["f1_ci"]
    assert 0.0 <= lo < five["f1"] < hi <= 1.0


# -- the CLI: JSON, sweep, errors ------------------------------------------------------------------


def test_cli_json_and_sweep_say_null_and_n_a(tmp_path: Path) -> None:
    items = write(
        tmp_path,
        {"id": "kremlin", "title": "Kremlin rejects talks", "topics": {"russia": 2},
         "text": "The Kremlin said Russia would not negotiate while sanctions remain, Putin's spokesman said."},
        {"text": "Harvest worries in Brazil pushed coffee prices up on Monday, traders said.", "topics": ["china"]},
    )
    result = newswire("taxonomy", "eval", str(items), "--json", "--sweep", "--errors")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    afghanistan = report["topics"]["afghanistan"]  # no positives, nothing tagged
    assert [afghanistan[k] for k in ("precision", "recall", "f1", "recall_grade2")] == [None] * 4
    assert [afghanistan[k] for k in CI_KEYS[:4]] == [None] * 4
    russia = report["topics"]["russia"]  # 1 of 1 found: defined, but too few positives for an F1 interval
    assert (russia["precision"], russia["recall"], russia["f1"], russia["f1_ci"]) == (1.0, 1.0, 1.0, None)
    assert russia["recall_ci"] is not None
    assert {row["recall"] for row in report["sweep"]["afghanistan"]} == {None}
    assert {row["f1"] for row in report["sweep"]["afghanistan"]} == {None}
    (mistake,) = report["mistakes"]
    assert (mistake["topic"], mistake["item"], mistake["title"]) == ("china", "line 2", "")
    assert mistake["excerpt"] == "Harvest worries in Brazil pushed coffee prices up on Monday, traders s"

    text = newswire("taxonomy", "eval", str(items), "--sweep", "--errors")
    assert text.returncode == 0, text.stderr
    assert "0.00 (0.00/0.00)" not in text.stdout and "n/a (n/a/n/a)" in text.stdout
    assert "china: missed (grade 1), score 0.00: line 2: 'Harvest worries in Brazil pushed coffee" in text.stdout
    assert "''" not in text.stdout
    (afghanistan_row,) = [line for line in text.stdout.splitlines() if line.startswith("afghanistan ")]
    assert "0.00" not in afghanistan_row.split("%")[0].split(None, 4)[4]  # P, R, F1, R@g2: all n/a


# -- contradictory or ambiguous label files --------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [{"text": "x", "topics": {"china": 2}, "traps": ["china"]}],
            "items.jsonl:1: trap 'china' must be grade 0, but 'topics' grades it 2",
        ),
        (
            [{"text": "x", "topics": ["russia", "china"], "traps": ["russia"]}],
            "items.jsonl:1: trap 'russia' must be grade 0, but 'topics' grades it 1",
        ),
        (
            [{"id": "a", "text": "x", "topics": []}, {"text": "y", "topics": []}, {"id": "a", "text": "z", "topics": []}],
            "items.jsonl:3: id 'a' is already the id of line 1",
        ),
        ([{"text": "", "topics": []}], "items.jsonl:1: 'text' is empty and there is no 'title' or 'lead': nothing to tag"),
        ([{"text": " \n", "title": " ", "lead": "", "topics": []}], "items.jsonl:1: 'text' is empty and there is no 'title'"),
    ],
)
def test_contradictory_or_ambiguous_lines_are_errors(lines: list[object], message: str, tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match=re.escape(message)):
        load_labelled(write(tmp_path, *lines), SLUGS)


def test_what_stays_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"text": "x", "topics": {"china": 0}, "traps": ["china"]},  # a trap graded 0 explicitly
        {"title": "Headline only", "text": "", "topics": []},  # a feed item without a summary
        {"id": "b", "text": "y", "topics": []},
        {"text": "", "lead": "A summary alone", "topics": []},  # the tagger scores a lead alone
    )
    assert [item.name for item in load_labelled(path, SLUGS)] == ["line 1", "line 2", "b", "line 4"]


def test_a_mistake_of_an_untitled_item_shows_the_start_of_its_text(tmp_path: Path) -> None:
    text = "Harvest   worries in Brazil\npushed coffee prices up on Monday, traders said, and more words follow."
    path = write(tmp_path, {"text": text, "topics": ["china"]}, {"title": "Coffee", "text": text, "topics": ["china"]})
    mistakes = evaluate(Tagger(load_taxonomy(), embeddings=False), load_labelled(path, SLUGS)).mistakes
    assert [(m.title, m.excerpt) for m in mistakes] == [
        ("", "Harvest worries in Brazil pushed coffee prices up on Monday, traders s"),
        ("Coffee", "Coffee"),
    ]


def test_cli_label_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    items = write(tmp_path, {"text": "x", "topics": {"china": 2}, "traps": ["china"]})
    result = newswire("taxonomy", "eval", str(items))
    assert result.returncode == 2
    assert "items.jsonl:1: trap 'china' must be grade 0" in one_line_error(result)
    items = write(tmp_path, {"id": 7, "text": "x", "topics": []}, {"id": "7", "text": "y", "topics": []})
    result = newswire("taxonomy", "eval", str(items))
    assert result.returncode == 2 and "items.jsonl:2: id '7' is already the id of line 1" in one_line_error(result)
    items = write(tmp_path, {"text": "", "topics": []})
    result = newswire("taxonomy", "eval", str(items))
    assert result.returncode == 2 and "items.jsonl:1: 'text' is empty" in one_line_error(result)
