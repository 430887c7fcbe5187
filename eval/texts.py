"""Texts of the labelled evaluation items, rebuilt from ../shared/corpus by key (texts never enter the repo).

- Feed items: key = canonical link; text = headline + "\\n" + summary (plain text), from the
  gesab001_headlines snapshots, deduplicated by key, the first snapshot in time order winning (the same
  rule the labellers' selection script uses, so an evaluator sees what the labeller read).
- Articles: key = manifest id; title + the page's extracted text (``newswire.processors.extract`` when it
  is available, else trafilatura with GB2312/GBK pages decoded as GB18030), or the corpus truth text with
  ``source="truth"``. Extractions are cached outside the repository.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
ArticleSource = Literal["extract", "truth"]


@dataclass(frozen=True)
class EvalItem:
    key: str
    title: str
    text: str
    lang: str | None = None


def corpus_root() -> Path | None:
    """``$NEWSWIRE_CORPUS`` or ``../shared/corpus`` beside the repo; ``None`` when absent."""
    env = os.environ.get("NEWSWIRE_CORPUS")
    path = Path(env) if env else REPO.parent / "shared" / "corpus"
    return path if path.is_dir() else None


def split_of(key: str) -> str:
    """The fixed split of a labelled item: by hash of its key, never chosen by reading."""
    return "heldout" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 == 0 else "tune"


# --------------------------------------------------------------------------- feed items


def _link_key(link: str) -> str:
    try:
        from newswire.processors.canonical import canonical_url
    except ImportError:  # pragma: no cover - before the canonical module existed
        return link.strip()
    try:
        return str(canonical_url(link.strip()))
    except ValueError:
        return link.strip()


def _plain(markup: str) -> str:
    if not markup.strip():
        return ""
    if "<" not in markup and "&" not in markup:
        return " ".join(markup.split())
    import lxml.etree
    import lxml.html

    try:
        text = lxml.html.fromstring(f"<div>{markup}</div>").text_content()
    except (ValueError, lxml.etree.ParserError):  # junk markup: the raw string is the fallback
        text = markup
    return " ".join(text.split())


def _feed_cache_path(base: Path) -> Path:
    # Keyed by the manifest and by the canonical-URL code: a change to either rebuilds the cache.
    h = hashlib.sha256((base / "manifest.jsonl").read_bytes())
    try:
        from newswire.processors import canonical

        h.update(Path(canonical.__file__).read_bytes())
    except ImportError:  # pragma: no cover
        pass
    return _cache_dir().parent / f"feeds-{h.hexdigest()[:12]}.json"


def feed_items(corpus: Path) -> dict[str, EvalItem]:
    """Every item of the gesab001 snapshots by canonical link (raw links are aliases of the same item)."""
    base = corpus / "feeds" / "gesab001_headlines"
    cache = _feed_cache_path(base)
    if cache.is_file():
        rows = json.loads(cache.read_text(encoding="utf-8"))
        out: dict[str, EvalItem] = {}
        for key, link, title, text in rows:
            item = EvalItem(key=key, title=title, text=text)
            out[key] = item
            out.setdefault(link, item)
        return out
    items, rows = _parse_feed_items(base)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return items


def _parse_feed_items(base: Path) -> tuple[dict[str, EvalItem], list[list[str]]]:
    import feedparser

    items: dict[str, EvalItem] = {}
    rows: list[list[str]] = []
    with open(base / "manifest.jsonl", encoding="utf-8") as fh:
        manifest = [json.loads(line) for line in fh if line.strip()]
    for entry in manifest:
        raw = gzip.decompress((base / entry["file"]).read_bytes())
        if not raw.strip():
            continue
        for e in feedparser.parse(raw).entries:
            link = (e.get("link") or "").strip()
            if not link:
                continue
            key = _link_key(link)
            if key in items:
                continue
            item = EvalItem(key=key, title=_plain(e.get("title", "")), text=_plain(e.get("summary", "")))
            items[key] = item
            items.setdefault(link, item)
            rows.append([key, link, item.title, item.text])
    return items, rows


# --------------------------------------------------------------------------- articles

_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.IGNORECASE)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newswire-eval" / "articles"


def _extract_with_pipeline(raw: bytes, url: str | None) -> tuple[str, str | None] | None:
    try:
        from newswire.processors import extract as extract_mod
    except ImportError:
        return None
    fn: Any = getattr(extract_mod, "extract_article", None)
    if fn is None:
        return None
    try:
        result = fn(raw, url=url)
    except TypeError:
        result = fn(raw, url)
    if result is None:
        return "", None
    return str(getattr(result, "text", "") or ""), getattr(result, "title", None)


def _extract_with_trafilatura(raw: bytes, url: str | None) -> tuple[str, str | None]:
    import trafilatura

    doc: str | bytes = raw
    m = _CHARSET.search(raw[:8192])
    if m and m.group(1).lower() in {b"gb2312", b"gbk", b"gb18030"}:
        doc = raw.decode("gb18030", errors="replace")
    text = trafilatura.extract(doc, url=url) or ""
    meta = trafilatura.extract_metadata(doc)
    return text, (meta.title if meta is not None else None)


def _extractor_name() -> str:
    """The cache key: the extractor and a digest of its code, so an edit of the extractor (or a new
    trafilatura) re-extracts instead of grading tags on stale texts."""
    try:
        from newswire.processors import extract as extract_mod
        from newswire.processors import trafilatura_speedups
    except ImportError:
        return "trafilatura"
    if not hasattr(extract_mod, "extract_article"):
        return "trafilatura"
    digest = hashlib.sha256(extract_mod.EXTRACTOR.encode())
    for module in (extract_mod, trafilatura_speedups):
        digest.update(Path(str(module.__file__)).read_bytes())
    return f"pipeline-{digest.hexdigest()[:12]}"


def article_items(
    corpus: Path,
    keys: Iterable[str] | None = None,
    *,
    source: ArticleSource = "extract",
    cache: Path | None = None,
) -> dict[str, EvalItem]:
    """Articles by manifest id (all, or only ``keys``)."""
    articles = corpus / "articles"
    wanted = set(keys) if keys is not None else None
    cache_root = (cache or _cache_dir()) / _extractor_name()
    out: dict[str, EvalItem] = {}
    with open(articles / "manifest.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            entry = json.loads(line)
            key = entry["id"]
            if wanted is not None and key not in wanted:
                continue
            title = entry.get("title") or ""
            if source == "truth" and entry.get("truth") and (articles / entry["truth"]).is_file():
                text = (articles / entry["truth"]).read_text(encoding="utf-8")
            else:
                text, extracted_title = _cached_extract(articles, entry, cache_root)
                title = extracted_title or title
            out[key] = EvalItem(key=key, title=title, text=text, lang=entry.get("lang"))
    return out


def _cached_extract(articles: Path, entry: dict[str, Any], cache_root: Path) -> tuple[str, str | None]:
    cached = cache_root / f"{entry['id']}.json"
    if cached.is_file():
        data = json.loads(cached.read_text(encoding="utf-8"))
        return str(data["text"]), data.get("title")
    raw = gzip.decompress((articles / entry["file"]).read_bytes())
    got = _extract_with_pipeline(raw, entry.get("url"))
    text, title = got if got is not None else _extract_with_trafilatura(raw, entry.get("url"))
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"text": text, "title": title}, ensure_ascii=False), encoding="utf-8")
    return text, title
