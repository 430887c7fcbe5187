"""Tagging quality figures: precision, recall and F1 per topic with 95% intervals.

Pure functions over (grade, tagged, trap) triples, shared by ``newswire taxonomy eval`` (a user's own
labelled items) and ``eval/tagging_eval.py`` (the labelled corpus sets and the CI quality gate), so
both report the same figures the same way. Positive means grade >= 1 (1 substantive, 2 central);
intervals are Wilson's for proportions and a seeded bootstrap over items for F1.

A figure nothing defines is ``None`` (JSON ``null``, ``n/a`` in text), and so is its interval:
precision when nothing was tagged, recall and F1 when there are no positives, recall on grade 2 when
there are no grade-2 items, the share of negatives tagged when there are no negatives. The F1 interval
is also ``None`` under ``MIN_POSITIVES_F1_CI`` positives: resampling so few positives mostly repeats
the same handful of outcomes (3 of 3 found gives [1.00, 1.00]), not a 95% interval worth printing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Z = 1.959963984540054  # two-sided 95%
BOOTSTRAP = 1000
MIN_POSITIVES_F1_CI = 5  # fewer positives: no F1 interval (see the module's docstring)


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


def rates(st: TopicStats) -> tuple[float | None, float | None, float | None]:
    """Precision (None when nothing was tagged), recall and F1 (None when there are no positives)."""
    pos = st.tp + st.fn
    p = st.tp / (st.tp + st.fp) if st.tp + st.fp else None
    r = st.tp / pos if pos else None
    return p, r, f1_of(st.tp, st.fp, st.fn) if pos else None


def _ratio(k: int, n: int) -> tuple[float | None, tuple[float, float] | None]:
    """k/n with its Wilson interval, both None when n is 0."""
    return (k / n, wilson(k, n)) if n else (None, None)


def summarise(st: TopicStats) -> dict[str, Any]:
    """The figures of one topic, intervals included (the JSON the gate and reports read); a figure
    nothing defines is None, and so is its interval."""
    pos = st.tp + st.fn
    p, p_ci = _ratio(st.tp, st.tp + st.fp)
    r, r_ci = _ratio(st.tp, pos)
    r2, r2_ci = _ratio(st.tp2, st.pos2)
    neg, neg_ci = _ratio(st.fp, st.neg)
    f1 = f1_of(st.tp, st.fp, st.fn) if pos else None
    return {
        "n": st.n,
        "positives": pos,
        "grade2": st.pos2,
        "negatives": st.neg,
        "tp": st.tp,
        "fp": st.fp,
        "fn": st.fn,
        "precision": p,
        "precision_ci": p_ci,
        "recall": r,
        "recall_ci": r_ci,
        "f1": f1,
        "f1_ci": bootstrap_f1(st.pairs) if pos >= MIN_POSITIVES_F1_CI else None,
        "recall_grade2": r2,
        "recall_grade2_ci": r2_ci,
        "neg_tagged": neg,
        "neg_tagged_ci": neg_ci,
        "traps": st.traps,
        "traps_tagged": st.traps_tagged,
    }


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A figure as text: ``n/a`` where nothing defines it."""
    return "n/a" if value is None else format(value, spec)


def _ci(ci: Sequence[float] | None) -> str:
    return "n/a" if ci is None else f"[{ci[0]:.2f},{ci[1]:.2f}]"


def table_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """A fixed-width table of ``summarise`` results by topic."""
    header = (
        f"{'topic':<15}{'n':>5}{'pos':>5}{'g2':>4}  {'P':>5} {'95% CI':<12}{'R':>5} {'95% CI':<12}"
        f"{'F1':>5} {'95% CI':<12}{'R@g2':>6} {'95% CI':<12}{'neg tag':>8} {'95% CI':<12}{'traps':>8}"
    )
    lines = [header]
    for topic, s in results.items():
        # A figure nothing defines (no positives, nothing tagged, ...) reads n/a, not a misleading 0.00.
        p, r, f1, r2 = (fmt(s[k]) for k in ("precision", "recall", "f1", "recall_grade2"))
        neg = "n/a" if s["neg_tagged"] is None else f"{100 * s['neg_tagged']:.1f}%"
        lines.append(
            f"{topic:<15}{s['n']:>5}{s['positives']:>5}{s['grade2']:>4}  "
            f"{p:>5} {_ci(s['precision_ci']):<12}{r:>5} {_ci(s['recall_ci']):<12}"
            f"{f1:>5} {_ci(s['f1_ci']):<12}{r2:>6} {_ci(s['recall_grade2_ci']):<12}"
            f"{neg:>8} {_ci(s['neg_tagged_ci']):<12}"
            f"{s['traps_tagged']:>4}/{s['traps']:<3}"
        )
    return lines
