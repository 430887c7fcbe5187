"""eval/agreement.py: the inter-annotator figures on hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.scripts import load_script

EVAL = Path(__file__).resolve().parents[2] / "eval"


ag = load_script("agreement", EVAL / "agreement.py")


def test_kappa_perfect_chance_and_textbook_case() -> None:
    assert ag.cohen_kappa([(True, True), (False, False)]) == 1.0
    # A and B each say yes half the time, independently: observed 0.5 = expected 0.5.
    assert ag.cohen_kappa([(True, True), (True, False), (False, True), (False, False)]) == 0.0
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: po 0.7, pe 0.5*0.6 + 0.5*0.4 = 0.5, kappa 0.4.
    pairs = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15
    assert ag.cohen_kappa(pairs) == pytest.approx(0.4)


def _write(path: Path, grades: dict[str, int]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "feed_items.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"key": key, "grades": {"china": g}}) + "\n" for key, g in grades.items())


def test_agreement_counts_only_items_both_read(tmp_path: Path) -> None:
    _write(tmp_path / "a", {"k1": 2, "k2": 1, "k3": 0, "k4": 2, "only-a": 2})
    _write(tmp_path / "b", {"k1": 1, "k2": 0, "k3": 0, "k4": 2})
    a = ag.load_labels(tmp_path / "a" / "feed_items.jsonl")
    b = ag.load_labels(tmp_path / "b" / "feed_items.jsonl")
    res = ag.agreement(a, b, "china")
    assert (res.n, res.pos_a, res.pos_b, res.both) == (4, 3, 2, 2)
    assert res.f1 == pytest.approx(2 * 2 / (3 + 2))
    assert (res.g2_a, res.g2_a_pos_b) == (2, 2)
    assert res.exact == pytest.approx(2 / 4)  # k1 differs (2 vs 1), k2 differs, k3 and k4 agree


def test_cli_reports_missing_second_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ag.main(["--b", str(tmp_path / "nothing")]) == 2
    assert "no second-reading labels" in capsys.readouterr().err


@pytest.mark.parametrize("filename", ["articles.jsonl", "feed_items.jsonl"])
def test_committed_second_reading_covers_every_labelled_item(filename: str) -> None:
    labels = EVAL / "labels"
    first = {lab.key for lab in ag.load_labels(labels / filename)}
    second = ag.load_labels(labels / "second-reader" / filename)
    assert first and {lab.key for lab in second} == first
    assert all(set(lab.grades) == set(ag.TOPICS) and set(lab.grades.values()) <= {0, 1, 2} for lab in second)
