"""Tagging throughput on one core: articles per second for typical articles.

Uses the corpus truth texts (real articles in en/de/zh/es/fr/ru..., ../shared/corpus or $NEWSWIRE_CORPUS)
when present, else synthetic articles. Prints a table; the target from the tagging issue is >= 2,000
articles/s on one core.

    python benchmarks/tagging_bench.py [--seconds 5] [--taxonomy PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from newswire.processors.tagging import Tagger, load_taxonomy

REPO = Path(__file__).resolve().parents[1]
TARGET = 2000.0


def corpus_articles() -> list[tuple[str, str, str]]:
    env = os.environ.get("NEWSWIRE_CORPUS")
    root = Path(env) if env else REPO.parent / "shared" / "corpus"
    manifest = root / "articles" / "manifest.jsonl"
    if not manifest.is_file():
        return []
    out: list[tuple[str, str, str]] = []
    with manifest.open(encoding="utf-8") as fh:
        for line in fh:
            entry = json.loads(line)
            truth = entry.get("truth")
            if truth and (root / "articles" / truth).is_file():
                text = (root / "articles" / truth).read_text(encoding="utf-8")
                out.append((entry.get("lang") or "?", entry.get("title") or "", text))
    return out


def synthetic_articles(n: int = 300) -> list[tuple[str, str, str]]:
    rng = random.Random(5)
    words = [
        "the",
        "government",
        "said",
        "on",
        "tuesday",
        "that",
        "officials",
        "would",
        "meet",
        "in",
        "the",
        "capital",
        "to",
        "discuss",
        "the",
        "budget",
        "minister",
        "president",
        "army",
        "troops",
        "russia",
        "china",
        "kabul",
        "market",
        "shares",
        "rose",
        "analysts",
        "expected",
        "growth",
        "in",
        "the",
        "second",
        "quarter",
        "while",
        "inflation",
        "eased",
        "and",
        "the",
        "central",
        "bank",
        "held",
        "rates",
        "steady",
    ]
    return [
        ("en", "Officials meet to discuss budget", " ".join(rng.choice(words) for _ in range(650)))
        for _ in range(n)
    ]


def measure(
    tagger: Tagger, docs: list[tuple[str, str, str]], seconds: float
) -> tuple[float, int, list[float]]:
    """Articles/s over repeated passes; returns (best pass rate, articles done, per-pass rates)."""
    rates: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or not rates:
        t0 = time.perf_counter()
        for _, title, text in docs:
            tagger.tag(title, text)
        dt = time.perf_counter() - t0
        rates.append(len(docs) / dt)
        done += len(docs)
    return max(rates), done, rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=5.0, help="time budget per row")
    ap.add_argument("--taxonomy", type=Path, default=None)
    ap.add_argument("--embeddings", action="store_true", help="with the embedding combiners (the extra)")
    args = ap.parse_args()
    console = Console(width=150)
    t0 = time.perf_counter()
    taxonomy = load_taxonomy(args.taxonomy)
    tagger = Tagger(taxonomy, embeddings=bool(args.embeddings))
    build_ms = 1000 * (time.perf_counter() - t0)
    real = corpus_articles()
    sets: list[tuple[str, list[tuple[str, str, str]]]] = []
    if real:
        sets.append(("corpus truth texts, all languages", real))
        by_lang: dict[str, list[tuple[str, str, str]]] = {}
        for doc in real:
            by_lang.setdefault(doc[0], []).append(doc)
        for lang in ("en", "de", "zh", "es", "fr"):
            if len(by_lang.get(lang, [])) >= 10:
                sets.append((f"corpus truth texts, {lang}", by_lang[lang]))
    else:
        console.print("[yellow]corpus not found: synthetic articles only[/yellow]")
    sets.append(("synthetic English, 650 words", synthetic_articles()))

    table = Table(
        title=f"tagging throughput, one core (taxonomy {taxonomy.version}, build {build_ms:.0f} ms)"
    )
    for col in (
        "texts",
        "articles",
        "median chars",
        "articles/s (best pass)",
        "median pass",
        "MB/s",
        "target",
    ):
        table.add_column(col, justify="right" if col != "texts" else "left")
    for name, docs in sets:
        best, _, rates = measure(tagger, docs, args.seconds / (1 if name.endswith("languages") else 2))
        chars = [len(d[2]) for d in docs]
        mb_s = best * statistics.mean(chars) / 1e6
        table.add_row(
            name,
            str(len(docs)),
            f"{statistics.median(chars):,.0f}",
            f"{best:,.0f}",
            f"{statistics.median(rates):,.0f}",
            f"{mb_s:.1f}",
            "ok" if best >= TARGET else "BELOW",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
