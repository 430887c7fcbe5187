"""Quality gate on the held-out evaluation splits (like trafilatura's tests/eval_gate.py).

Each part (extraction, tagging, ...) computes its held-out figures from ../shared/corpus (or $NEWSWIRE_CORPUS) and
fails when one drops more than TOLERANCE under the floor pinned in tests/eval_floors.json under the
part's key. Without the corpus the parts are skipped with the reason. Runs under pytest (CI) and as a
script that prints the figures next to their floors:

    python tests/eval_gate.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: python tests/eval_gate.py
    sys.path.insert(0, str(REPO))

from tests.support.scripts import load_script

FLOORS = Path(__file__).with_name("eval_floors.json")
TOLERANCE = 0.01


def load_floors(part: str) -> dict[str, Any]:
    if not FLOORS.is_file():
        return {}
    data: dict[str, Any] = json.loads(FLOORS.read_text(encoding="utf-8"))
    return dict(data.get(part, {}))


# --------------------------------------------------------------------------- extraction
# Mean token F1 of extract_article on the corpus' truth pages (benchmarks/extraction_eval.py defines
# the score), overall and for the languages with a floor. All 661 pages, in a pool of 2 processes.

EXTRACTION_WORKERS = 2


def extraction_figures() -> dict[str, float] | None:
    """{"mean_f1": ..., "lang/<code>": ..., "pages_per_second": ...}, or None without the corpus."""
    ee = load_script("extraction_eval", REPO / "benchmarks" / "extraction_eval.py")
    corpus = ee.corpus_root()
    if corpus is None:
        return None
    report = ee.evaluate(ee.truth_pages(corpus), workers=EXTRACTION_WORKERS)
    figures = {"mean_f1": report.mean_f1, "pages": float(len(report.scores))}
    by_lang: dict[str, list[float]] = {}
    for score in report.scores:
        by_lang.setdefault(score.lang, []).append(score.f1)
    for lang, values in by_lang.items():
        figures[f"lang/{lang}"] = sum(values) / len(values)
    figures["pages_per_second"] = report.pages_per_second
    return figures


def extraction_failures(figures: dict[str, float], floors: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    pinned = {"mean_f1": floors.get("mean_f1")} | {
        f"lang/{k}": v for k, v in floors.get("lang_f1", {}).items()
    }
    for key, floor in pinned.items():
        if floor is None:
            continue
        got = figures.get(key)
        if got is None:
            failures.append(f"extraction {key}: no figure")
        elif got < floor - TOLERANCE:
            failures.append(f"extraction {key}: token F1 {got:.3f} < floor {floor:.3f} - {TOLERANCE}")
    return failures


def test_extraction_gate() -> None:
    floors = load_floors("extraction")
    if not floors:
        pytest.skip("no extraction floors in tests/eval_floors.json")
    figures = extraction_figures()
    if figures is None:
        pytest.skip("corpus not found (../shared/corpus or $NEWSWIRE_CORPUS): extraction gate not run")
    failures = extraction_failures(figures, floors)
    assert not failures, "; ".join(failures)


def test_extraction_failures_flag_drops_beyond_tolerance() -> None:
    floors = {"mean_f1": 0.90, "lang_f1": {"en": 0.95, "zh": 0.80}}
    assert extraction_failures({"mean_f1": 0.891, "lang/en": 0.95, "lang/zh": 0.80}, floors) == []
    failures = extraction_failures({"mean_f1": 0.889, "lang/en": 0.95}, floors)
    assert [f.split(":")[0] for f in failures] == ["extraction mean_f1", "extraction lang/zh"]


def _print_extraction() -> int:
    floors = load_floors("extraction")
    figures = extraction_figures()
    if figures is None:
        print("extraction: corpus not found, skipped")
        return 0
    lang_floors = floors.get("lang_f1", {})
    rows = [("mean_f1", floors.get("mean_f1"))] + [(f"lang/{k}", v) for k, v in sorted(lang_floors.items())]
    for key, floor in rows:
        pinned = f"floor {floor:.3f}" if floor is not None else "not pinned"
        print(f"extraction {key:<12} F1 {figures.get(key, float('nan')):.3f} {pinned}")
    print(f"extraction {int(figures['pages'])} pages, {figures['pages_per_second']:.1f} pages/s")
    failures = extraction_failures(figures, floors)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


# --------------------------------------------------------------------------- tagging


def tagging_figures() -> dict[str, dict[str, dict[str, Any]]] | None:
    """Held-out figures per set and topic, or None without the corpus."""
    te = load_script("tagging_eval", REPO / "eval" / "tagging_eval.py")
    texts = load_script("texts", REPO / "eval" / "texts.py")
    corpus = texts.corpus_root()
    if corpus is None:
        return None
    from newswire.processors.tagging import Tagger, load_taxonomy

    taxonomy = load_taxonomy()
    tagger = Tagger(taxonomy, embeddings=False)  # the gate measures the default install
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for set_name, filename in te.SETS.items():
        labels = [lab for lab in te.load_labels(te.LABELS / filename) if lab.split == "heldout"]
        if not labels:
            continue
        if set_name == "feeds":
            items = texts.feed_items(corpus)
        else:
            items = texts.article_items(corpus, {lab.key for lab in labels})
        rows = te.score_rows(tagger, labels, items)
        out[set_name] = {
            t.slug: te.summarise(te.stats_for(rows, t.slug, t.threshold)) for t in taxonomy.topics
        }
    return out


def tagging_failures(figures: dict[str, dict[str, dict[str, Any]]], floors: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    for set_name, topics in floors.get("f1", {}).items():
        for topic, floor in topics.items():
            got = figures.get(set_name, {}).get(topic)
            if got is None:
                failures.append(f"tagging {set_name}/{topic}: no held-out figures")
            elif got["f1"] is None:  # no held-out positives: F1 is undefined
                failures.append(f"tagging {set_name}/{topic}: no held-out positives, so no F1")
            elif got["f1"] < floor - TOLERANCE:
                failures.append(
                    f"tagging {set_name}/{topic}: held-out F1 {got['f1']:.3f} < floor {floor:.3f}"
                )
    return failures


def test_tagging_gate() -> None:
    floors = load_floors("tagging")
    if not floors:
        pytest.skip("no tagging floors in tests/eval_floors.json")
    figures = tagging_figures()
    if figures is None:
        pytest.skip("corpus not found (../shared/corpus or $NEWSWIRE_CORPUS): tagging gate not run")
    failures = tagging_failures(figures, floors)
    assert not failures, "; ".join(failures)


def _print_tagging() -> int:
    floors = load_floors("tagging")
    figures = tagging_figures()
    if figures is None:
        print("tagging: corpus not found, skipped")
        return 0
    for set_name, topics in figures.items():
        for topic, s in topics.items():
            floor = floors.get("f1", {}).get(set_name, {}).get(topic)
            pinned = f"floor {floor:.3f}" if floor is not None else "not pinned"
            f1 = "n/a" if s["f1"] is None else f"{s['f1']:.3f}"
            print(f"tagging {set_name:<9}{topic:<15} F1 {f1:>5} (n+={s['positives']}) {pinned}")
    failures = tagging_failures(figures, floors)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(max(_print_extraction(), _print_tagging()))
