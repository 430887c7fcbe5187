"""Tagging quality figures: precision, recall and F1 per topic with 95% intervals.

Pure functions over (grade, tagged, trap) triples, shared by ``newswire taxonomy eval`` (a user's own
labelled items) and ``eval/tagging_eval.py`` (the labelled corpus sets and the CI quality gate), so
both report the same figures the same way. Positive means grade >= 1 (1 substantive, 2 central);
intervals are Wilson's for proportions and a seeded bootstrap over items for F1.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Z = 1.959963984540054  # two-sided 95%
BOOTSTRAP = 1000


@dataclass
class TopicStats:
    """Counts for one topic over a set of labelled items."""

    topic: str
    n: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    pos2: int = 0
    tp2: int = 0
    neg: int = 0
    traps: int = 0
    traps_tagged: int = 0
    pairs: list[tuple[bool, bool]] = field(default_factory=list)  # (gold positive, tagged)


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score interval (95%) of the proportion k/n; (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + Z * Z / n
    centre = (p + Z * Z / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def f1_of(tp: int, fp: int, fn: int) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def bootstrap_f1(pairs: Sequence[tuple[bool, bool]], seed: int = 7) -> tuple[float, float]:
    """95% interval of F1 by resampling items (seeded: the same items give the same interval)."""
    if not pairs:
        return (0.0, 1.0)
    rng = random.Random(seed)
    n = len(pairs)
    values = []
    for _ in range(BOOTSTRAP):
        tp = fp = fn = 0
        for _ in range(n):
            gold, tagged = pairs[rng.randrange(n)]
            if gold and tagged:
                tp += 1
            elif tagged:
                fp += 1
            elif gold:
                fn += 1
        values.append(f1_of(tp, fp, fn))
    values.sort()
    return (values[int(0.025 * BOOTSTRAP)], values[int(0.975 * BOOTSTRAP) - 1])


def topic_stats(topic: str, items: Iterable[tuple[int, bool, bool]]) -> TopicStats:
    """Counts from (grade, tagged, is a trap) per item."""
    st = TopicStats(topic)
    for grade, tagged, trap in items:
        gold = grade >= 1
        st.n += 1
        st.pairs.append((gold, tagged))
        if gold and tagged:
            st.tp += 1
        elif tagged:
            st.fp += 1
        elif gold:
            st.fn += 1
        if grade == 2:
            st.pos2 += 1
            st.tp2 += int(tagged)
        if not gold:
            st.neg += 1
        if trap:
            st.traps += 1
            st.traps_tagged += int(tagged)
    return st


def rates(st: TopicStats) -> tuple[float, float, float]:
    """Precision, recall and F1, each 0 where nothing defines it."""
    p = st.tp / (st.tp + st.fp) if st.tp + st.fp else 0.0
    r = st.tp / (st.tp + st.fn) if st.tp + st.fn else 0.0
    return p, r, f1_of(st.tp, st.fp, st.fn)


def summarise(st: TopicStats) -> dict[str, Any]:
    """The figures of one topic, intervals included (the JSON the gate and reports read)."""
    pos = st.tp + st.fn
    p, r, f1 = rates(st)
    return {
        "n": st.n,
        "positives": pos,
        "grade2": st.pos2,
        "negatives": st.neg,
        "tp": st.tp,
        "fp": st.fp,
        "fn": st.fn,
        "precision": p,
        "precision_ci": wilson(st.tp, st.tp + st.fp),
        "recall": r,
        "recall_ci": wilson(st.tp, pos),
        "f1": f1,
        "f1_ci": bootstrap_f1(st.pairs),
        "recall_grade2": st.tp2 / st.pos2 if st.pos2 else None,
        "recall_grade2_ci": wilson(st.tp2, st.pos2),
        "neg_tagged": st.fp / st.neg if st.neg else 0.0,
        "neg_tagged_ci": wilson(st.fp, st.neg),
        "traps": st.traps,
        "traps_tagged": st.traps_tagged,
    }


def _ci(ci: Sequence[float]) -> str:
    return f"[{ci[0]:.2f},{ci[1]:.2f}]"


def table_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """A fixed-width table of ``summarise`` results by topic."""
    header = (
        f"{'topic':<15}{'n':>5}{'pos':>5}{'g2':>4}  {'P':>5} {'95% CI':<12}{'R':>5} {'95% CI':<12}"
        f"{'F1':>5} {'95% CI':<12}{'R@g2':>6} {'95% CI':<12}{'neg tag':>8} {'95% CI':<12}{'traps':>8}"
    )
    lines = [header]
    for topic, s in results.items():
        # A ratio nothing defines (no positives, nothing tagged) reads n/a, not a misleading 0.00.
        tagged = s["tp"] + s["fp"]
        p = "n/a" if not tagged else f"{s['precision']:.2f}"
        r = "n/a" if not s["positives"] else f"{s['recall']:.2f}"
        f1 = "n/a" if not tagged and not s["positives"] else f"{s['f1']:.2f}"
        r2 = "n/a" if s["recall_grade2"] is None else f"{s['recall_grade2']:.2f}"
        lines.append(
            f"{topic:<15}{s['n']:>5}{s['positives']:>5}{s['grade2']:>4}  "
            f"{p:>5} {_ci(s['precision_ci']):<12}{r:>5} {_ci(s['recall_ci']):<12}"
            f"{f1:>5} {_ci(s['f1_ci']):<12}{r2:>6} {_ci(s['recall_grade2_ci']):<12}"
            f"{100 * s['neg_tagged']:>7.1f}% {_ci(s['neg_tagged_ci']):<12}"
            f"{s['traps_tagged']:>4}/{s['traps']:<3}"
        )
    return lines
