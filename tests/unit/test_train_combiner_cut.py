"""eval/train_combiner.py's cut-off rule: the negatives cap, then grade-2 recall, then F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.scripts import load_script

EVAL = Path(__file__).resolve().parents[2] / "eval"


tc = load_script("train_combiner", EVAL / "train_combiner.py")

# One set: 10 grade-2 items scored 0.9 and one grade-2 item scored 0.3; 4 grade-1 items at 0.8;
# 200 negatives, three of them at 0.35 (1.5%) and the rest at 0.1.
SCORES = np.array([0.9] * 10 + [0.3] + [0.8] * 4 + [0.35] * 3 + [0.1] * 197)
GRADE = np.array([2] * 10 + [2] + [1] * 4 + [0] * 3 + [0] * 197)
SETS = np.zeros(len(SCORES), dtype=int)


def test_best_f1_alone_drops_the_low_scored_central_item() -> None:
    cut, f1 = tc.pick_cut(SCORES, GRADE, SETS, neg_cap=0.015, g2_recall=0.0)
    assert cut == 0.8 and f1 == 2 * 14 / (14 + 15)


def test_grade2_floor_prefers_the_cut_that_keeps_every_central_item() -> None:
    cut, f1 = tc.pick_cut(SCORES, GRADE, SETS, neg_cap=0.015, g2_recall=0.98)
    assert cut == 0.3  # three negatives (1.5%) tagged, within the cap, at a lower F1
    assert f1 == 2 * 15 / (18 + 15)


def test_the_negatives_cap_wins_over_the_grade2_floor() -> None:
    # with a 1% cap no cut reaches the central item at 0.3, so F1 alone decides
    cut, _ = tc.pick_cut(SCORES, GRADE, SETS, neg_cap=0.01, g2_recall=0.98)
    assert cut == 0.8
