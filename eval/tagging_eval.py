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
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from texts import EvalItem, article_items, corpus_root, feed_items, split_of

from newswire.processors.tag_metrics import TopicStats, f1_of, fmt, summarise, table_lines, topic_stats
from newswire.processors.tagging import Tagger, load_taxonomy, reaches

LABELS = Path(__file__).resolve().parent / "labels"
SETS = {"articles": "articles.jsonl", "feeds": "feed_items.jsonl"}


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
    return topic_stats(
        topic,
        (
            (
                row.label.grades[topic],
                reaches(row.scores.get(topic, 0.0), threshold),
                topic in row.label.traps,
            )
            for row in rows
            if topic in row.label.grades
        ),
    )


def print_table(title: str, results: dict[str, dict[str, Any]]) -> None:
    print(f"\n== {title}")
    for line in table_lines(results):
        print(line)


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
                if any(reaches(r.scores.get(t, 0.0), thresholds[t]) for t in taxonomy.slugs)
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
                        f1 = f1_of(st.tp, st.fp, st.fn) if st.tp + st.fn else None  # no positives: n/a
                        cells.append(f"{th:.2f}:{fmt(f1, '.3f')}({st.fp}/{st.fn})")
                    print(f"  sweep {t:<15} " + " ".join(cells))
            if args.errors:
                for t in topics:
                    print_errors(split_rows, t, thresholds[t], args.limit)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
