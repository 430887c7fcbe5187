"""The tagger of a git revision against the working tree's, in one process, on the same texts.

    python benchmarks/tagging_ab.py [--base HEAD] [--rounds 12] [--taxonomy]

Shared machines are noisy, so the two taggers take turns (ABBA order) within one process, each pass is
timed in CPU seconds (time stolen by neighbours does not count), and the table gives the best and the
median pass of each and their ratio. Also checks that both give the same scores and matches on every
text measured: a speed change that changes tagging is a tagging change.

With ``--taxonomy`` the base side also uses the shipped taxonomy of that revision (its
newswire/taxonomy/*.yaml, read by this tree's loader with its refusals of never-counting forms off),
so a taxonomy edit is timed too; the scores then may differ, and the table says on how many texts they do.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table
from tagging_bench import corpus_articles, synthetic_articles

from newswire.processors import tagging as current

REPO = Path(__file__).resolve().parents[1]


_SCRATCH: list[tempfile.TemporaryDirectory[str]] = []


def _scratch() -> str:
    """A temporary directory removed when the script ends."""
    _SCRATCH.append(tempfile.TemporaryDirectory(prefix="tagging_ab-"))
    return _SCRATCH[-1].name


def tagging_at(rev: str) -> ModuleType:
    """processors/tagging.py as it was at ``rev``, imported as a module of its own."""
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:processors/tagging.py"],
            capture_output=True, text=True, check=True,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"error: cannot read processors/tagging.py at {rev}: {exc.stderr.strip()}") from None
    path = Path(_scratch()) / "tagging_base.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tagging_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tagging_base"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        # Taggers before 5df9261 scanned with pyahocorasick, no longer a dependency.
        hint = " (pip install pyahocorasick)" if exc.name == "ahocorasick" else ""
        raise SystemExit(f"error: the tagger at {rev} needs the module {exc.name!r}{hint}") from None
    return module


def taxonomy_at(rev: str) -> Path:
    """The shipped taxonomy directory as it was at ``rev``, written to a temporary directory."""
    listing = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", f"{rev}:newswire/taxonomy"],
                             check=False, capture_output=True, text=True)
    if listing.returncode != 0:
        raise SystemExit(f"error: cannot list newswire/taxonomy at {rev}: {listing.stderr.strip()}")
    out = Path(_scratch())
    for name in listing.stdout.split():
        if name.endswith((".yaml", ".yml")):
            shown = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:newswire/taxonomy/{name}"],
                                   check=False, capture_output=True, text=True)
            if shown.returncode != 0:
                raise SystemExit(f"error: cannot read newswire/taxonomy/{name} at {rev}: {shown.stderr.strip()}")
            (out / name).write_text(shown.stdout, encoding="utf-8")
    return out


def load_base_taxonomy(directory: Path) -> Any:
    """An older revision's taxonomy, read by the tree's loader. Checks added since that only refuse
    files (a form that can never count) are off here: they change nothing a loaded taxonomy does."""
    from newswire.processors import taxonomy as loader

    check = loader._check_forms_can_count
    loader._check_forms_can_count = lambda *_: None  # type: ignore[assignment]
    try:
        return loader.load_taxonomy(directory)
    except loader.TaxonomyError as exc:
        raise SystemExit(f"error: the base revision's taxonomy does not load with this tree's loader: {exc}") from None
    finally:
        loader._check_forms_can_count = check


def passes(tagger: Any, docs: list[tuple[str, str, str]]) -> float:
    t0 = time.process_time()
    for _, title, text in docs:
        tagger.tag(title, text)
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    ap.add_argument("--rounds", type=int, default=12, help="passes of each tagger per row")
    ap.add_argument("--taxonomy", action="store_true",
                    help="the base side uses the base revision's shipped taxonomy too (scores may differ)")
    args = ap.parse_args()
    base_module = tagging_at(args.base)
    taxonomy = current.load_taxonomy()
    base_taxonomy = load_base_taxonomy(taxonomy_at(args.base)) if args.taxonomy else taxonomy
    taggers = {"base": base_module.Tagger(base_taxonomy, embeddings=False),
               "tree": current.Tagger(taxonomy, embeddings=False)}
    real = corpus_articles()
    sets: list[tuple[str, list[tuple[str, str, str]]]] = []
    if real:
        sets.append(("corpus, all languages", real))
        for lang in ("en", "de", "zh"):
            sets.append((f"corpus, {lang}", [d for d in real if d[0] == lang]))
    sets.append(("synthetic English, 650 words", synthetic_articles()))

    differ: dict[str, int] = {}
    for name, docs in sets:
        differ[name] = 0
        for _, title, text in docs:
            a = [(t.slug, t.score, t.matches) for t in taggers["base"].score(title, text)]
            b = [(t.slug, t.score, t.matches) for t in taggers["tree"].score(title, text)]
            if a != b:
                if not args.taxonomy:
                    print(f"error: {name}: the two taggers differ on {title!r}: {a} != {b}", file=sys.stderr)
                    return 1
                differ[name] += 1

    what = "code and taxonomy" if args.taxonomy else "code"
    same = "scores differ on the texts counted" if args.taxonomy else "same scores on every text"
    table = Table(title=f"tagging, articles per CPU second: {args.base} against the working tree, {what} "
                        f"({args.rounds} passes each, interleaved; {same})")
    for col in ("texts", "articles", *(("scores differ",) if args.taxonomy else ()), f"{args.base} best", "tree best", "ratio", f"{args.base} median",
                "tree median", "ratio"):
        table.add_column(col, justify="left" if col == "texts" else "right")
    for name, docs in sets:
        times: dict[str, list[float]] = {"base": [], "tree": []}
        for r in range(args.rounds):
            order = ("base", "tree") if r % 2 == 0 else ("tree", "base")
            for key in order:
                times[key].append(passes(taggers[key], docs))
        best = {k: len(docs) / min(v) for k, v in times.items()}
        med = {k: len(docs) / statistics.median(v) for k, v in times.items()}
        table.add_row(name, f"{len(docs):,}", *((f"{differ[name]:,}",) if args.taxonomy else ()), f"{best['base']:,.0f}", f"{best['tree']:,.0f}",
                      f"{best['tree'] / best['base']:.2f}", f"{med['base']:,.0f}", f"{med['tree']:,.0f}",
                      f"{med['tree'] / med['base']:.2f}")
    Console(width=150).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
