"""Evaluate the topic tagger against the labelled sets in eval/labels/.

Per topic, per set (articles, feed items) and per split (tune, heldout): precision, recall and F1
(positive = grade >= 1) with 95% intervals (Wilson for proportions, a seeded bootstrap over items for
F1), recall on grade-2 items, the share of negatives (grade 0) tagged, and how many labelled traps were
tagged.

    python eval/tagging_eval.py                       # tune split, both sets
    python eval/tagging_eval.py --split heldout       # the held-out split: run it once, at the end
    python eval/tagging_eval.py --errors              # false positives/negatives (tune split only)
    python eval/tagging_eval.py --sweep               # F1 per threshold (tune split only)
    python eval/tagging_eval.py --json out.json       # machine-readable figures (the quality gate)
    python eval/tagging_eval.py --embeddings          # with the embedding combiners (the extra)

Needs ../shared/corpus (or $NEWSWIRE_CORPUS) for the texts; labels hold keys and grades only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from newswire.processors.tagging import Tagger, load_taxonomy
from texts import EvalItem, article_items, corpus_root, feed_items, split_of

LABELS = Path(__file__).resolve().parent / "labels"
SETS = {"articles": "articles.jsonl", "feeds": "feed_items.jsonl"}
Z = 1.959963984540054
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Label:
    key: str
    split: str
    grades: dict[str, int]
    traps: tuple[str, ...]


@dataclass
class Row:
    """One labelled item with the tagger's scores."""

    label: Label
    scores: dict[str, float]
    matches: dict[str, dict[str, int]]
    item: EvalItem | None = None


@dataclass
class TopicStats:
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


def load_labels(path: Path) -> list[Label]:
    labels: list[Label] = []
    if not path.is_file():
        return labels
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            key = obj["key"]
            if key in seen:
                continue  # a relabel later in the file would be a labelling error; first one wins
            seen.add(key)
            split = split_of(key)
            if obj.get("split") not in (None, split):
                print(
                    f"warning: {path.name}:{lineno}: split {obj.get('split')!r} != hash split {split}",
                    file=sys.stderr,
                )
            grades = {str(k): int(v) for k, v in (obj.get("grades") or {}).items()}
            labels.append(Label(key, split, grades, tuple(obj.get("traps") or ())))
    return labels


def wilson(k: int, n: int) -> tuple[float, float]:
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


def score_rows(tagger: Tagger, labels: list[Label], items: dict[str, EvalItem]) -> list[Row]:
    rows: list[Row] = []
    for label in labels:
        item = items.get(label.key)
        if item is None:
            continue
        scored = tagger.score(item.title, item.text)
        rows.append(Row(label, {t.slug: t.score for t in scored}, {t.slug: t.matches for t in scored}, item))
    return rows


def stats_for(rows: list[Row], topic: str, threshold: float) -> TopicStats:
    st = TopicStats(topic)
    for row in rows:
        if topic not in row.label.grades:
            continue
        grade = row.label.grades[topic]
        tagged = row.scores.get(topic, 0.0) >= threshold and row.scores.get(topic, 0.0) > 0
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
        if topic in row.label.traps:
            st.traps += 1
            st.traps_tagged += int(tagged)
    return st


def summarise(st: TopicStats) -> dict[str, Any]:
    pos = st.tp + st.fn
    p = st.tp / (st.tp + st.fp) if st.tp + st.fp else 0.0
    r = st.tp / pos if pos else 0.0
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
        "f1": f1_of(st.tp, st.fp, st.fn),
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


def print_table(title: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n== {title}")
    head = (
        f"{'topic':<15}{'n':>5}{'pos':>5}{'g2':>4}  {'P':>5} {'95% CI':<12}{'R':>5} {'95% CI':<12}"
        f"{'F1':>5} {'95% CI':<12}{'R@g2':>6} {'95% CI':<12}{'neg tag':>8} {'95% CI':<12}{'traps':>8}"
    )
    print(head)
    for topic, s in results.items():
        r2 = "  n/a" if s["recall_grade2"] is None else f"{s['recall_grade2']:.2f}"
        print(
            f"{topic:<15}{s['n']:>5}{s['positives']:>5}{s['grade2']:>4}  "
            f"{s['precision']:>5.2f} {_ci(s['precision_ci']):<12}{s['recall']:>5.2f} {_ci(s['recall_ci']):<12}"
            f"{s['f1']:>5.2f} {_ci(s['f1_ci']):<12}{r2:>6} {_ci(s['recall_grade2_ci']):<12}"
            f"{100 * s['neg_tagged']:>7.1f}% {_ci(s['neg_tagged_ci']):<12}"
            f"{s['traps_tagged']:>4}/{s['traps']:<3}"
        )


def by_language(rows: list[Row], topics: Sequence[str], thresholds: dict[str, float]) -> dict[str, Any]:
    """Per language of the items: per topic, positives found and negatives tagged (counts: most
    languages hold a handful of positives, too few for a rate to mean much)."""
    out: dict[str, Any] = {}
    langs = sorted({r.item.lang or "?" for r in rows if r.item is not None})
    for lang in langs:
        lang_rows = [r for r in rows if r.item is not None and (r.item.lang or "?") == lang]
        cells = {}
        for t in topics:
            st = stats_for(lang_rows, t, thresholds[t])
            cells[t] = {"found": st.tp, "positives": st.tp + st.fn, "neg_tagged": st.fp, "negatives": st.neg}
        out[lang] = {"items": len(lang_rows), "topics": cells}
    return out


def print_by_language(table: dict[str, Any], topics: Sequence[str]) -> None:
    print("  by language: positives found / positives, negatives tagged / negatives")
    print(f"  {'lang':<6}{'items':>6}  " + "".join(f"{t:<22}" for t in topics))
    for lang, entry in sorted(table.items(), key=lambda kv: -kv[1]["items"]):
        cells = "".join(
            f"{c['found']:>3}/{c['positives']:<3} {c['neg_tagged']:>3}/{c['negatives']:<8}"
            for c in (entry["topics"][t] for t in topics)
        )
        print(f"  {lang:<6}{entry['items']:>6}  {cells}")


def print_errors(rows: list[Row], topic: str, threshold: float, limit: int) -> None:
    fps: list[Row] = []
    fns: list[Row] = []
    for row in rows:
        if topic not in row.label.grades:
            continue
        grade = row.label.grades[topic]
        tagged = row.scores.get(topic, 0.0) >= threshold and row.scores.get(topic, 0.0) > 0
        if tagged and grade == 0:
            fps.append(row)
        elif not tagged and grade >= 1:
            fns.append(row)
    for kind, lst in (("FALSE POSITIVE", fps), ("FALSE NEGATIVE", fns)):
        for row in sorted(lst, key=lambda r: -r.scores.get(topic, 0.0))[:limit]:
            item = row.item
            assert item is not None
            text = " ".join(item.text.split())
            print(
                f"--- {kind} {topic} score={row.scores.get(topic, 0.0):.3f} grade={row.label.grades[topic]} "
                f"key={row.label.key} traps={list(row.label.traps)}\n    matches={row.matches.get(topic)}\n"
                f"    T: {item.title[:200]}\n    X: {text[:400]}"
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--set", choices=("articles", "feeds", "all"), default="all")
    ap.add_argument("--split", choices=("tune", "heldout", "both"), default="tune")
    ap.add_argument("--taxonomy", type=Path, default=None, help="YAML file or directory (default: shipped)")
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--article-source", choices=("extract", "truth"), default="extract")
    ap.add_argument("--errors", action="store_true", help="list false positives/negatives (tune only)")
    ap.add_argument("--topic", default=None, help="only this topic (errors, sweep)")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--sweep", action="store_true", help="F1 per threshold (tune only)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--by-language", action="store_true", help="also per language of the items (articles)")
    ap.add_argument(
        "--embeddings",
        action="store_true",
        help="use the shipped embedding combiners (needs the embeddings extra); default: keyword tagger",
    )
    args = ap.parse_args(argv)

    if (args.errors or args.sweep) and args.split != "tune":
        print("error: --errors and --sweep read items; they are for the tune split only", file=sys.stderr)
        return 2
    corpus = corpus_root()
    if corpus is None:
        print("error: corpus not found (../shared/corpus or $NEWSWIRE_CORPUS)", file=sys.stderr)
        return 2
    taxonomy = load_taxonomy(args.taxonomy)
    # Explicit either way, so that a NEWSWIRE_EMBEDDINGS in the environment cannot change the figures.
    tagger = Tagger(taxonomy, embeddings=bool(args.embeddings))
    thresholds = {t.slug: t.threshold for t in taxonomy.topics}
    splits = ("tune", "heldout") if args.split == "both" else (args.split,)
    sets = tuple(SETS) if args.set == "all" else (args.set,)
    with_emb = sorted(tagger.embeddings.combiners) if tagger.embeddings else []
    print(
        f"taxonomy {taxonomy.version}; splits {', '.join(splits)}; embedding combiners: "
        + (", ".join(with_emb) or "none")
    )
    report: dict[str, Any] = {"taxonomy": taxonomy.version, "embeddings": with_emb, "sets": {}}
    for set_name in sets:
        labels = [lab for lab in load_labels(args.labels / SETS[set_name]) if lab.split in splits]
        if not labels:
            print(f"\n== {set_name}: no labels yet for {', '.join(splits)}")
            continue
        if set_name == "feeds":
            items = feed_items(corpus)
        else:
            items = article_items(corpus, {lab.key for lab in labels}, source=args.article_source)
        missing = [lab.key for lab in labels if lab.key not in items]
        if missing:
            print(
                f"warning: {len(missing)} {set_name} labels have no item in the corpus, e.g. {missing[:3]}",
                file=sys.stderr,
            )
        rows = score_rows(tagger, labels, items)
        report["sets"][set_name] = {}
        for split in splits:
            split_rows = [r for r in rows if r.label.split == split]
            topics = args.topic.split(",") if args.topic else taxonomy.slugs
            results = {t: summarise(stats_for(split_rows, t, thresholds[t])) for t in topics}
            any_neg = [r for r in split_rows if all(g == 0 for g in r.label.grades.values())]
            any_fp = sum(
                1
                for r in any_neg
                if any(
                    r.scores.get(t, 0) >= thresholds[t] > 0 and r.scores.get(t, 0) > 0 for t in taxonomy.slugs
                )
            )
            report["sets"][set_name][split] = {
                "items": len(split_rows),
                "topics": results,
                "all_negative_items": len(any_neg),
                "all_negative_items_tagged": any_fp,
            }
            print_table(f"{set_name} / {split}: {len(split_rows)} items", results)
            print(f"items negative for every topic: {len(any_neg)}, tagged with anything: {any_fp}")
            if args.by_language:
                langs = by_language(split_rows, topics, thresholds)
                report["sets"][set_name][split]["by_language"] = langs
                print_by_language(langs, topics)
            if args.sweep:
                for t in topics:
                    cells = []
                    for th in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
                        st = stats_for(split_rows, t, th)
                        cells.append(f"{th:.2f}:{f1_of(st.tp, st.fp, st.fn):.3f}({st.fp}/{st.fn})")
                    print(f"  sweep {t:<15} " + " ".join(cells))
            if args.errors:
                for t in topics:
                    print_errors(split_rows, t, thresholds[t], args.limit)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
