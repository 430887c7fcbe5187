"""Extraction quality and speed: token F1 of ``extract_article`` against the corpus truth files.

The corpus (../shared/corpus or $NEWSWIRE_CORPUS) has 661 article pages with a hand-made truth text.
Each page's original bytes go through the extractor with its URL and no Content-Type (the corpus keeps
no headers, so the page's own BOM/<meta> charset decides). Prints mean token F1 (and precision and
recall) overall and per language, and pages per second.

Token F1 is the usual bag-of-words score: tokens are whitespace-separated words, except that Chinese
and Japanese characters (Han, kana) are tokens one by one, since those scripts do not separate words
by spaces. precision = |extracted & truth| / |extracted|, recall = |extracted & truth| / |truth|
(multiset intersection), F1 their harmonic mean; an empty extraction scores 0 (1 if the truth is
empty too).

    python benchmarks/extraction_eval.py [--workers 2] [--limit N] [--extractor pipeline|bare]
                                         [--option favor_precision=true] [--json results.json]

``--extractor bare`` runs plain ``trafilatura.extract`` (GB2312/GBK pages pre-decoded as GB18030), the
baseline the design guide quotes; ``--option`` sets trafilatura options of the pipeline extractor
(``newswire.processors.extract.TRAFILATURA_OPTIONS``) for experiments.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# One token per character for Han ideographs and Japanese kana; anything else splits on whitespace.
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


@dataclass(frozen=True)
class Page:
    id: str
    path: str
    truth: str
    url: str | None
    lang: str
    source: str


@dataclass(frozen=True)
class Score:
    id: str
    lang: str
    source: str
    precision: float
    recall: float
    f1: float
    seconds: float
    extracted: bool
    language: str | None = None  # what the extractor says (None: nothing extracted, or not known)


@dataclass(frozen=True)
class Report:
    scores: list[Score]
    wall_seconds: float
    workers: int

    @property
    def mean_f1(self) -> float:
        return statistics.fmean(s.f1 for s in self.scores) if self.scores else 0.0

    @property
    def pages_per_second(self) -> float:
        return len(self.scores) / self.wall_seconds if self.wall_seconds > 0 else 0.0


def corpus_root() -> Path | None:
    env = os.environ.get("NEWSWIRE_CORPUS")
    root = Path(env) if env else REPO.parent / "shared" / "corpus"
    return root if (root / "articles" / "manifest.jsonl").is_file() else None


def truth_pages(corpus: Path) -> list[Page]:
    """The pages that have a truth text, in manifest order."""
    articles = corpus / "articles"
    pages: list[Page] = []
    with (articles / "manifest.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if not row.get("truth"):
                continue
            pages.append(
                Page(
                    id=row["id"],
                    path=str(articles / row["file"]),
                    truth=str(articles / row["truth"]),
                    url=row.get("url") or row.get("url_hint"),
                    lang=row.get("lang") or "?",
                    source=row.get("source", "?").split("/")[-1],
                )
            )
    return pages


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def token_scores(extracted: str, truth: str) -> tuple[float, float, float]:
    """(precision, recall, F1) of the extracted text's tokens against the truth's."""
    got, want = Counter(tokens(extracted)), Counter(tokens(truth))
    if not got or not want:
        same = float(not got and not want)
        return same, same, same
    common = sum((got & want).values())
    if common == 0:
        return 0.0, 0.0, 0.0
    precision = common / sum(got.values())
    recall = common / sum(want.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- extractors (in workers)

_MODE = "pipeline"


def _init_worker(mode: str, options: dict[str, Any]) -> None:
    global _MODE
    _MODE = mode
    if mode == "pipeline" and options:
        from newswire.processors import extract

        extract.TRAFILATURA_OPTIONS.update(options)


def _extract_bare(body: bytes, url: str | None) -> str:
    import trafilatura

    document: str | bytes = body
    match = re.search(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", body[:8192], re.IGNORECASE)
    if match and match.group(1).lower() in {b"gb2312", b"gbk", b"gb18030"}:
        document = body.decode("gb18030", errors="replace")
    return trafilatura.extract(document, url=url) or ""


def _score_page(page: Page) -> Score:
    body = gzip.decompress(Path(page.path).read_bytes())
    truth = Path(page.truth).read_text(encoding="utf-8")
    started = time.perf_counter()
    language = None
    if _MODE == "bare":
        text = _extract_bare(body, page.url)
    else:
        from newswire.processors.extract import extract_article

        result = extract_article(body, page.url or "http://corpus.test/" + page.id)
        text = result.text if result is not None else ""
        language = result.language if result is not None else None
    seconds = time.perf_counter() - started
    precision, recall, f1 = token_scores(text, truth)
    return Score(page.id, page.lang, page.source, precision, recall, f1, seconds, bool(text), language)


def evaluate(
    pages: list[Page], *, workers: int = 1, mode: str = "pipeline", options: dict[str, Any] | None = None
) -> Report:
    """Score every page; ``workers`` > 1 uses a process pool (as the pipeline does)."""
    options = options or {}
    started = time.perf_counter()
    if workers <= 1:
        _init_worker(mode, options)
        scores = [_score_page(page) for page in pages]
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(mode, options)) as pool:
            scores = list(pool.map(_score_page, pages, chunksize=8))
    return Report(scores, time.perf_counter() - started, max(1, workers))


# --------------------------------------------------------------------------- report


def _group(scores: Iterable[Score], key: str) -> dict[str, list[Score]]:
    groups: dict[str, list[Score]] = defaultdict(list)
    for score in scores:
        groups[getattr(score, key)].append(score)
    return groups


def print_report(report: Report, *, label: str, by_source: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Extraction token F1 ({label}, {len(report.scores)} pages with truth)")
    for column in ("group", "pages", "F1", "precision", "recall", "empty"):
        table.add_column(column, justify="left" if column == "group" else "right")

    def row(name: str, scores: list[Score]) -> None:
        table.add_row(
            name,
            str(len(scores)),
            f"{statistics.fmean(s.f1 for s in scores):.3f}",
            f"{statistics.fmean(s.precision for s in scores):.3f}",
            f"{statistics.fmean(s.recall for s in scores):.3f}",
            str(sum(not s.extracted for s in scores)),
        )

    row("all", report.scores)
    groups = _group(report.scores, "lang")
    big = sorted((lang for lang in groups if len(groups[lang]) >= 5), key=lambda lang: -len(groups[lang]))
    for lang in big:
        row(f"lang {lang}", groups[lang])
    rest = [s for lang, scores in groups.items() if lang not in big for s in scores]
    if rest:
        row("lang other (<5 pages each)", rest)
    if by_source:
        for source, scores in sorted(_group(report.scores, "source").items()):
            row(f"source {source}", scores)
    Console().print(table)
    told = [s for s in report.scores if s.language is not None]
    if told:
        agree = sum(s.language == s.lang for s in told)
        print(
            f"language: {len(told)} pages given one, {agree / len(told):.1%} agree with the manifest's "
            "(itself py3langid on the truth text, or the page's lang attribute)"
        )
    cpu = sum(s.seconds for s in report.scores)
    print(
        f"{len(report.scores)} pages in {report.wall_seconds:.1f} s with {report.workers} worker(s): "
        f"{report.pages_per_second:.1f} pages/s ({len(report.scores) / cpu:.1f} pages/s per core of extraction)"
    )


def _parse_option(text: str) -> tuple[str, Any]:
    name, _, raw = text.partition("=")
    value: Any = {"true": True, "false": False}.get(raw.lower(), raw)
    return name.strip(), value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N truth pages")
    parser.add_argument("--extractor", choices=("pipeline", "bare"), default="pipeline")
    parser.add_argument("--option", action="append", default=[], help="trafilatura option NAME=VALUE")
    parser.add_argument("--by-source", action="store_true", help="also one row per corpus source")
    parser.add_argument("--json", type=Path, help="write per-page scores here")
    args = parser.parse_args(argv)
    corpus = corpus_root()
    if corpus is None:
        print("corpus not found (../shared/corpus or $NEWSWIRE_CORPUS)", file=sys.stderr)
        return 2
    pages = truth_pages(corpus)
    if args.limit:
        pages = pages[: args.limit]
    options = dict(_parse_option(o) for o in args.option)
    report = evaluate(pages, workers=args.workers, mode=args.extractor, options=options)
    label = args.extractor + "".join(f" {k}={v}" for k, v in options.items())
    print_report(report, label=label, by_source=args.by_source)
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in report.scores], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
