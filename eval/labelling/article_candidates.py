"""Select the article pages to label for the topic-tagging evaluation set.

Selection, reproducible: every corpus page whose main text carries any cue for any of the four topics
(a deliberately generous multilingual screen: names of the countries, capitals, leaders, demonyms,
military and coup vocabulary), plus a fixed-seed random sample of pages with no cue at all, so that the
set also measures false tags on unrelated text.

The cues only decide which pages a person reads; they never decide a grade. They are kept apart from the
tagger's taxonomy on purpose, so that the evaluation set does not inherit the tagger's blind spots.

Text of a page: `truth/<id>.txt` where the corpus has one, otherwise trafilatura's extraction of the
original HTML (GB2312/GBK pages decoded as GB18030 first: trafilatura garbles their raw bytes).

Usage:
    python eval/labelling/article_candidates.py [--corpus DIR] [--cache DIR] [--out FILE]
prints (or writes) one JSON object per selected page, sorted by id:
    {"id", "lang", "title", "reason": "cue" | "random", "cues": {topic: [matched cue, ...]}}
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trafilatura

TOPICS = ("afghanistan", "russia", "china", "civil-military")
RANDOM_SEED = 20240808
RANDOM_SAMPLE = 150

# Latin/Cyrillic cues match at a word start (prefix match, case-insensitive) so inflected forms are
# caught ("Russlands", "российской"); CJK cues match as plain substrings since those scripts have no
# spaces. Cues marked with a leading "=" match case-sensitively (e.g. "General" as a title, not the
# English adjective).
# fmt: off
CUES: dict[str, tuple[str, ...]] = {
    "afghanistan": (
        "afghan", "afgan", "afeganist", "афган", "阿富汗", "kabul", "kaboul", "кабул", "喀布尔",
        "taliban", "talibán", "талиб", "塔利班", "karzai", "ghani", "kandahar", "helmand", "mudschahed",
        "mujahide", "moudjahid", "bagram", "mazar-i-sharif", "herat", "jalalabad", "아프가니스탄",
        "アフガニスタン",
    ),
    "russia": (
        "russia", "russian", "russland", "russisch", "russe", "russie", "rusia",
        "russo", "rosyj", "rosji", "росси", "русск", "рф", "俄罗斯", "俄國", "俄国", "俄羅斯", "俄方",
        "俄军", "俄乌", "普京", "普丁", "莫斯科", "克里姆林", "苏联", "蘇聯", "moscow", "moskau",
        "moscou", "moscú", "mosca", "moskwa", "москв", "kremlin", "kreml", "кремл", "putin",
        "poutine", "путин", "medvedev", "medwedew", "медведев", "lavrov", "lawrow", "лавров",
        "shoigu", "schoigu", "шойгу", "navalny", "nawalny", "навальн", "soviet", "sowjet",
        "soviéti", "soviéto", "советск", "ссср", "ussr", "udssr", "urss", "gazprom", "газпром",
        "ukrain", "украин", "乌克兰", "烏克蘭", "crimea", "krim", "crimée", "крым",
        "yeltsin", "jelzin", "ельцин", "gorbachev", "gorbatschow", "горбач", "st. petersburg",
        "sankt petersburg", "петербург", "wagner", "prigozhin", "prigoschin", "пригожин",
        "rosj", "rusya", "러시아", "ロシア",
    ),
    "china": (
        "china", "chines", "chine", "chinois", "chino", "chiń", "китай", "китае", "中国",
        "中國", "中共", "中华", "中華", "华人", "華人", "beijing", "peking", "pékin", "pekín", "pequim",
        "пекин", "北京", "xi jinping", "习近平", "習近平", "习主席", "hong kong", "hongkong", "香港",
        "taiwan", "taïwan", "taiwán", "тайван", "台湾", "台灣", "xinjiang", "新疆", "uyghur", "uigur",
        "ouïghour", "uighur", "уйгур", "维吾尔", "tibet", "тибет", "西藏", "shanghai", "schanghai",
        "上海", "shenzhen", "深圳", "huawei", "华为", "華為", "tiktok", "bytedance", "字节跳动",
        "alibaba", "阿里巴巴", "tencent", "腾讯", "wuhan", "武汉", "mao zedong", "毛泽东", "deng xiaoping",
        "邓小平", "macau", "澳门", "guangzhou", "广州", "communist party", "kommunistische partei",
        "parti communiste", "partido comunista", "коммунистическ", "共产党", "共產黨", "renminbi",
        "yuan", "人民币", "解放军", "people's liberation army", "cina", "cines", "pechino", "chiny",
        "chinach", "chińsk", "çin", "중국", "베이징", "홍콩", "대만",
    ),
    "civil-military": (
        "coup", "putsch", "golpe", "golpista", "junta", "хунт", "переворот", "政变", "政變", "军政府",
        "military", "militär", "militaer", "militaire", "militar", "wojsk", "военн",
        "армия", "армии", "军方", "军队", "軍隊", "军事", "軍事", "军人", "军官", "=General", "=Gen.",
        "général", "generál", "generał", "генерал", "将军", "將軍", "上将", "army", "armee", "armée",
        "ejército", "ejercito", "esercito", "exército", "bundeswehr", "wehrmacht", "pentagon",
        "пентагон", "五角大楼", "joint chiefs", "generalstab", "état-major", "estado mayor", "troops",
        "truppen", "troupes", "tropas", "войск", "soldier", "soldat", "soldado", "солдат", "士兵",
        "martial law", "kriegsrecht", "loi martiale", "ley marcial", "военное положение", "戒严",
        "戒嚴", "court-martial", "court martial", "militärgericht", "tribunal militaire",
        "tribunal militar", "военный суд", "军事法庭", "national guard", "nationalgarde",
        "garde nationale", "guardia nacional", "defence minister", "defense minister",
        "verteidigungsminister", "ministre de la défense", "ministro de defensa", "министр обороны",
        "国防部", "國防部", "офицер", "쿠데타", "군부", "クーデター", "自衛隊",
    ),
}
# fmt: on

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
_CHARSET = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class Page:
    id: str
    lang: str
    title: str
    text: str


@dataclass
class Candidate:
    id: str
    lang: str
    title: str
    reason: str
    cues: dict[str, list[str]] = field(default_factory=dict)


def _compile(cue: str) -> re.Pattern[str]:
    case_sensitive = cue.startswith("=")
    body = cue[1:] if case_sensitive else cue
    flags = 0 if case_sensitive else re.IGNORECASE
    if _CJK.search(body):
        return re.compile(re.escape(body), flags)
    # \b fails before a non-word start such as "." so only anchor when the cue starts with a letter.
    return re.compile(r"(?<!\w)" + re.escape(body), flags)


_PATTERNS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    topic: [(cue.lstrip("="), _compile(cue)) for cue in dict.fromkeys(cues)] for topic, cues in CUES.items()
}


def find_cues(text: str) -> dict[str, list[str]]:
    """Return, per topic, the cues found in `text` (topics without a cue are left out)."""
    found: dict[str, list[str]] = {}
    for topic, patterns in _PATTERNS.items():
        hits = [cue for cue, pattern in patterns if pattern.search(text)]
        if hits:
            found[topic] = hits
    return found


def default_corpus() -> Path:
    env = os.environ.get("NEWSWIRE_CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def decode_html(raw: bytes) -> str | bytes:
    """Decode GB2312/GBK pages as GB18030 (a superset); leave other pages to trafilatura's own sniffing.

    Some pages declare GB2312 but are UTF-8 (gne-0039): GB-encoded Chinese is almost never valid UTF-8,
    so a page that decodes strictly as UTF-8 is taken as UTF-8 whatever it declares.
    """
    match = _CHARSET.search(raw[:8192])
    if match and match.group(1).lower() in {b"gb2312", b"gbk", b"gb18030"}:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("gb18030", errors="replace")
    return raw


def page_text(articles: Path, entry: dict[str, str], cache: Path | None) -> str:
    """Main text of one page: the truth file if any, else trafilatura's extraction (cached)."""
    truth = entry.get("truth")
    if truth and (articles / truth).is_file():
        return (articles / truth).read_text(encoding="utf-8")
    cached = cache / f"{entry['id']}.txt" if cache else None
    if cached and cached.is_file():
        return cached.read_text(encoding="utf-8")
    raw = gzip.decompress((articles / entry["file"]).read_bytes())
    text = trafilatura.extract(decode_html(raw), url=entry.get("url")) or ""
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(text, encoding="utf-8")
    return text


def load_pages(corpus: Path, cache: Path | None) -> list[Page]:
    articles = corpus / "articles"
    manifest = articles / "manifest.jsonl"
    if not manifest.is_file():
        raise FileNotFoundError(f"no article manifest at {manifest} (set NEWSWIRE_CORPUS or --corpus)")
    pages = []
    with manifest.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            text = page_text(articles, entry, cache)
            pages.append(Page(entry["id"], entry.get("lang") or "", entry.get("title") or "", text))
    return pages


def select(pages: Iterable[Page], sample: int = RANDOM_SAMPLE, seed: int = RANDOM_SEED) -> list[Candidate]:
    """All cued pages (title or text) plus a seeded random sample of the pages without any cue."""
    cued: list[Candidate] = []
    plain: list[Page] = []
    for page in pages:
        cues = find_cues(page.title + "\n" + page.text)
        if cues:
            cued.append(Candidate(page.id, page.lang, page.title, "cue", cues))
        else:
            plain.append(page)
    # Rank by a seeded hash rather than drawing with random.sample: a change to the cue list then
    # only adds or drops the pages it moves, instead of reshuffling the whole sample.
    drawn = sorted(plain, key=lambda p: hashlib.sha256(f"{seed}:{p.id}".encode()).hexdigest())[:sample]
    chosen = cued + [Candidate(p.id, p.lang, p.title, "random") for p in drawn]
    return sorted(chosen, key=lambda c: c.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=default_corpus())
    parser.add_argument(
        "--cache", type=Path, default=None, help="where to cache extracted texts (outside the repo)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write JSON lines here instead of stdout")
    args = parser.parse_args(argv)
    try:
        candidates = select(load_pages(args.corpus, args.cache))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [json.dumps(c.__dict__, ensure_ascii=False) for c in candidates]
    if args.out:
        args.out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    else:
        sys.stdout.write("\n".join(rows) + "\n")
    by_reason = {r: sum(c.reason == r for c in candidates) for r in ("cue", "random")}
    print(f"selected {len(candidates)} pages: {by_reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
