"""Agreement between two independent readings of the same items (inter-annotator agreement).

    python eval/agreement.py                                   # eval/labels vs eval/labels/second-reader
    python eval/agreement.py --a DIR --b DIR [--split heldout]

Per set and topic, over the items both readings graded: how many positives (grade >= 1) each reading
found, Cohen's kappa on positive/negative, the F1 of one reading scored against the other (symmetric:
2·both / (positives A + positives B)) with a seeded bootstrap 95% interval, and how many of reading A's
grade-2 items reading B also calls positive. The F1 between two careful human readings is the ceiling a
tagger can be measured against on these labels: a tagger scored against one reading cannot be expected
to agree with it more than a second reader does. No texts are read; labels only.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tagging_eval import LABELS, SETS, Label, load_labels

from newswire.processors.tag_metrics import bootstrap_f1, f1_of

TOPICS = ("afghanistan", "russia", "china", "civil-military")


@dataclass(frozen=True)
class Agreement:
    n: int
    pos_a: int
    pos_b: int
    both: int
    kappa: float
    f1: float
    f1_ci: tuple[float, float]
    g2_a: int
    g2_a_pos_b: int
    exact: float  # share of items with the same grade 0/1/2


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float:
    n = len(pairs)
    if n == 0:
        return float("nan")
    observed = sum(1 for a, b in pairs if a == b) / n
    pa = sum(1 for a, _ in pairs if a) / n
    pb = sum(1 for _, b in pairs if b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def agreement(a: list[Label], b: list[Label], topic: str) -> Agreement:
    by_key = {lab.key: lab for lab in b}
    common = [(x, by_key[x.key]) for x in a if x.key in by_key]
    grades = [(x.grades.get(topic, 0), y.grades.get(topic, 0)) for x, y in common]
    pairs = [(ga >= 1, gb >= 1) for ga, gb in grades]
    both = sum(1 for p, q in pairs if p and q)
    pos_a = sum(1 for p, _ in pairs if p)
    pos_b = sum(1 for _, q in pairs if q)
    return Agreement(
        n=len(pairs),
        pos_a=pos_a,
        pos_b=pos_b,
        both=both,
        kappa=cohen_kappa(pairs),
        f1=f1_of(both, pos_b - both, pos_a - both),
        f1_ci=bootstrap_f1(pairs),
        g2_a=sum(1 for ga, _ in grades if ga == 2),
        g2_a_pos_b=sum(1 for ga, gb in grades if ga == 2 and gb >= 1),
        exact=sum(1 for ga, gb in grades if ga == gb) / len(grades) if grades else float("nan"),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--a", type=Path, default=LABELS, help="first reading (default: eval/labels)")
    ap.add_argument("--b", type=Path, default=LABELS / "second-reader", help="second reading")
    ap.add_argument("--split", choices=("tune", "heldout", "both"), default="both")
    args = ap.parse_args(argv)
    splits = ("tune", "heldout") if args.split == "both" else (args.split,)
    print(f"A = {args.a}, B = {args.b}; positive = grade >= 1; F1 = B scored against A")
    found = False
    for set_name, filename in SETS.items():
        b = [lab for lab in load_labels(args.b / filename) if lab.split in splits]
        if not b:
            continue
        found = True
        a = [lab for lab in load_labels(args.a / filename) if lab.split in splits]
        print(f"\n== {set_name}: {len({x.key for x in b} & {x.key for x in a})} items read twice")
        print(
            f"{'topic':<16}{'pos A':>6}{'pos B':>6}{'both':>6}{'kappa':>7}   F1 [95% CI]      A's g2 pos in B  exact"
        )
        for topic in TOPICS:
            ag = agreement(a, b, topic)
            g2 = f"{ag.g2_a_pos_b}/{ag.g2_a}"
            print(
                f"{topic:<16}{ag.pos_a:>6}{ag.pos_b:>6}{ag.both:>6}{ag.kappa:>7.2f}   "
                f"{ag.f1:.2f} [{ag.f1_ci[0]:.2f},{ag.f1_ci[1]:.2f}]  {g2:>14}  {ag.exact:5.2f}"
            )
    if not found:
        print(f"error: no second-reading labels under {args.b}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
