"""Topic tagging: one Aho-Corasick pass over an item's text for every topic of a taxonomy.

How it works (the long version is docs/tagging.md):

1. The title, the lead and the text are joined into one string, NFC-normalised, lower-cased
   with offsets kept aligned, and run once through an Aho-Corasick automaton (ahocorasick_rs)
   holding every term form, cue and exclude phrase of every topic.
2. Each raw hit is kept only if it sits on word boundaries. Scripts written with spaces need a
   non-letter/digit on both sides (a ``*`` stem only on the left, the rest of the word is its
   inflection). CJK characters have no word boundaries, so a form starting/ending with one matches
   as a plain substring there; ambiguity is handled by preferring the longest overlapping term and by
   exclude phrases (e.g. 俄亥俄 "Ohio" hides 俄).
3. Per topic: hits inside an exclude phrase ("made in china", "junta de andalucía") or inside a
   dateline ("MOSCOW (Reuters) -") are dropped; overlapping hits keep the longest; a term with
   ``requires`` counts only when one of its cues occurs in the item (with ``window``, within that many
   characters of the hit), one with ``unless`` only when none does; ``context`` terms count only next
   to a non-context term of the topic; a hit that is one item of an enumeration of three or more names
   ("Germany, Russia, India and Brazil") counts a quarter.
4. Score: each term adds ``weight * sat(count)`` (sat = 1 + ln count, so repetition has diminishing
   returns), hits in the title multiplied by the topic's ``title_weight``, in the lead by
   ``lead_weight``; text evidence is divided by ``(words / 200) ** 0.4`` for texts longer than 200
   words (a few mentions in a long article are a passing mention, in a headline they are the story);
   a topic's ``dampen`` cues (sports, human-interest words) multiply its evidence by
   ``dampen_factor``; the raw evidence r maps to ``r / (r + 6)`` in [0, 1). A topic is tagged when
   score >= its threshold.
"""

from __future__ import annotations

import hashlib
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

import ahocorasick_rs

from newswire.processors.embeddings import Embeddings, embedding_text, resolve
from newswire.processors.taxonomy import Taxonomy, TaxonomyError, load_taxonomy, normalise_text
from newswire.records import TopicTag

__all__ = [
    "BOW_CHARS",
    "BOW_SCALE",
    "NORM_WORDS",
    "SCORE_HALF",
    "Tagger",
    "Taxonomy",
    "TaxonomyError",
    "TopicExplanation",
    "TopicTag",
    "bow_tokens",
    "load_taxonomy",
    "reaches",
]

SCORE_HALF = 6.0  # raw evidence that maps to score 0.5
DFA_MAX_FORMS = 20_000  # above this many forms the automaton is an NFA (see Tagger.__init__)
NORM_WORDS = 200.0  # texts up to this many words are not length-discounted
NORM_EXPONENT = 0.4  # longer texts divide their text evidence by (words / NORM_WORDS) ** NORM_EXPONENT
LEAD_CHARS = 400  # without an explicit lead, the first ~400 characters of the text are the lead

_KIND_TERM = 0
_KIND_CUE = 1
_KIND_EXCLUDE = 2

_REGION_TITLE = 0
_REGION_LEAD = 1
_REGION_BODY = 2

# A dateline opens a wire story with the place it was filed from; the place is not the subject.
# "MOSCOW (Reuters) -", "KABUL, Afghanistan (AP) —", "Beijing, June 3 (Xinhua) --", "MOSKAU (dpa) -",
# "Moscow, 12 March:", "Moscow, 8 December (AFP) -", "BEIJING/TAIPEI (Reuters) -" (a story filed from
# two places), "МОСКВА, 8 декабря. /ТАСС/.", and the Chinese "新华社北京6月3日电".
_DATELINE_RE = re.compile(
    r"""\s*(?:
        (?:[A-ZÀ-ÖØ-ÞА-ЯЁ][A-ZÀ-ÖØ-ÞА-ЯЁa-zß-öø-ÿа-яё.'\- ]{1,40}?)      # place
        (?:\s?/\s?[A-ZÀ-ÖØ-ÞА-ЯЁ][A-ZÀ-ÖØ-ÞА-ЯЁa-zß-öø-ÿа-яё.'\- ]{1,30}?){0,2}  # /another place
        (?:,\s*[A-ZÀ-ÖØ-ÞА-ЯЁ\d][\w.' ]{1,30}?)?                          # , region / date
        (?:\s*(?:\([^)\n]{1,40}\))?\s*(?:--|[-–—:])\s                         # (agency) -
          |\.?\s*/[^/\n]{1,20}/\.?\s)                                        # . /AGENCY/.
      |
        [\u4e00-\u9fff]{0,8}?\d{1,2}月\d{1,2}日(?:电|訊|讯|報道|报道)
    )""",
    re.VERBOSE,
)


_CJK_RANGES = ((0x3040, 0x30FF), (0x3400, 0x9FFF), (0xF900, 0xFAFF))


class _CjkCounter:
    """Counts the CJK characters of a text that occur in no form: the words of a text without spaces
    are estimated from them. A table lookup over the text's code points (numpy) rather than a regex:
    a regex meets each of a Chinese article's thousands of characters as a separate match."""

    def __init__(self, known: set[int]) -> None:
        import numpy as np  # imported here: only a tagger needs it, and the CLI starts without it

        self._np = np
        self._size = max(hi for _, hi in _CJK_RANGES) + 1
        lut = np.zeros(self._size + 1, dtype=bool)  # the last slot stands for every code point above
        for lo, hi in _CJK_RANGES:
            lut[lo : hi + 1] = True
        lut[sorted(known)] = False
        self._lut = lut

    def __call__(self, text: str) -> int:
        np = self._np
        # surrogatepass: a lone surrogate (from a surrogateescape decode) is a code point like another
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        return int(np.count_nonzero(self._lut[np.minimum(codes, self._size)]))


# The automaton reads UTF-8, which has no lone surrogates (left by a surrogateescape decode); each
# becomes U+FFFD, one code point for one, so offsets stay valid.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


# "A country in a list" ("the US, China, Russia and India") is a passing mention: a hit that is one of
# three or more enumerated names counts LIST_FACTOR times. An item is a capitalised word group (or 2-4
# CJK characters), optionally after articles ("la Chine, la Russie, le Japon et le Brésil", "de la",
# "l'Inde") and items are joined by commas, "and"/"or" in the corpus languages, or 、/，/和.
LIST_FACTOR = 0.25
_ARTICLES = r"(?:the|la|le|les|el|los|las|der|die|das|den|dem|de|del|des|du)"
_LIST_SEP_LEFT = re.compile(r"(?:,\s*|\s+(?:and|or|und|oder|et|ou|y|o|e|и|или)\s+|、|，|和|与)\Z")
_LIST_ITEM_LEFT = re.compile(
    r"(?:(?<![\w'.-])(?:[ld]')?[A-ZÀ-ÖØ-ÞА-ЯЁ][\w'.-]*(?:\s+[\w'.-]+){0,2}|[\u4e00-\u9fff]{2,4})\Z"
)
# Articles (up to two words, or an elided l'/d') just before an item, searched at the end of a window
_ARTICLE_LEFT = re.compile(rf"(?:(?<![\w'.-]){_ARTICLES}\s+){{1,2}}\Z|(?<![\w'.-])[ld]'\Z")
_LIST_SEP_RIGHT = re.compile(r"(?:'s)?(?:,\s*|\s+(?:and|or|und|oder|et|ou|y|o|e|и|или)\s+|、|，|和|与)")
_LIST_ITEM_RIGHT = re.compile(
    rf"(?:{_ARTICLES}\s+){{0,2}}(?:[ld]')?"
    r"(?:[A-ZÀ-ÖØ-ÞА-ЯЁ][\w'.-]*(?:\s+[A-Z][\w'.-]*){0,2}|[\u4e00-\u9fff]{2,4})"
)


def _article_start(text: str, end: int) -> int:
    """Where the articles right before ``text[end:]`` begin (``end`` when there are none)."""
    found = _ARTICLE_LEFT.search(text, max(0, end - 12), end)
    return found.start() if found else end


_LIST_BEFORE = (
    ",",
    ", ",
    "、",
    "，",
    "和",
    "与",
    " and ",
    " or ",
    " und ",
    " oder ",
    " et ",
    " ou ",
    " y ",
    " o ",
    " e ",
    " и ",
    " или ",
)
_LIST_AFTER = (
    ",",
    "'s,",
    "、",
    "，",
    "和",
    "与",
    " and ",
    " or ",
    " und ",
    " oder ",
    " et ",
    " ou ",
    " y ",
    " o ",
    " e ",
    " и ",
    " или ",
)


_SEP_WORDS = ("and", "or", "und", "oder", "et", "ou", "y", "o", "e", "и", "или")
_SEP_CJK = ("、", "，", "和", "与")
# What a left-hand list item can be made of (its match lies in the run of these at the end).
_ITEM_CHARS_REVERSED = re.compile(r"[\w'.\s-]*")


def _sep_left_start(left: str) -> int | None:
    """Where ``_LIST_SEP_LEFT.search(left)`` would start, or None, without scanning ``left`` from the
    start as a search anchored at its end does (Chinese text passes the cheap test of ``_in_list``
    often, and the scan was a fifth of its tagging time). Unit-tested against the regex."""
    stripped = left.rstrip()  # str.isspace is the \s of a str pattern
    if stripped.endswith(","):
        return len(stripped) - 1
    if len(stripped) == len(left):
        return len(left) - 1 if left.endswith(_SEP_CJK) else None
    for word in _SEP_WORDS:
        if stripped.endswith(word):
            before = stripped[: len(stripped) - len(word)]
            kept = before.rstrip()
            if len(kept) < len(before):
                return len(kept)
    return None


def _item_left(left: str) -> re.Match[str] | None:
    """``_LIST_ITEM_LEFT.search(left)``, searching only the trailing run of characters an item can
    hold (the same match: none can start before that run)."""
    run = _ITEM_CHARS_REVERSED.match(left[::-1])
    return _LIST_ITEM_LEFT.search(left, len(left) - (run.end() if run else 0))


def _in_list(text: str, start: int, end: int) -> bool:
    start = _article_start(text, start)  # an item's articles belong to it ("la Chine")
    # Cheap test first: an enumerated name has a separator right beside it.
    if not text.startswith(_LIST_AFTER, end) and not text[max(0, start - 7) : start].endswith(_LIST_BEFORE):
        return False
    items = 1
    left = text[max(0, start - 120) : start]
    while items < 3:
        sep_start = _sep_left_start(left)
        if sep_start is None:
            break
        left = left[:sep_start]
        item = _item_left(left)
        if item is None:
            break
        items += 1
        left = left[: item.start()]
        left = left[: _article_start(left, len(left))].rstrip()
    pos = end
    stop = min(len(text), end + 120)
    while items < 3:
        sep = _LIST_SEP_RIGHT.match(text, pos, stop)
        if sep is None:
            break
        item = _LIST_ITEM_RIGHT.match(text, sep.end(), stop)
        if item is None:
            break
        items += 1
        pos = item.end()
    return items >= 3


# Context words for a combiner's "bow:<word>" weights: the words (3+ letters, scripts written with
# spaces) and CJK character bigrams of the title and the first BOW_CHARS characters of the text, each
# present word contributing BOW_SCALE. Computed only for items where such a topic has kept evidence.
BOW_CHARS = 20000
BOW_SCALE = 0.5
_BOW_WORD = re.compile(r"[^\W\d_]{3,}")
_BOW_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]+")


def bow_tokens(title: str | None, text: str) -> set[str]:
    """The context words of an item (see BOW_CHARS): lower-cased words of 3+ letters outside CJK runs,
    and the character bigrams of CJK runs."""
    low = (normalise_text(title or "") + "\n" + normalise_text(text or "")[:BOW_CHARS]).lower()
    runs = _BOW_CJK.findall(low)
    if not runs:
        return set(_BOW_WORD.findall(low))
    out = set(_BOW_WORD.findall(_BOW_CJK.sub(" ", low)))
    for run in runs:
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return out


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF  # CJK radicals, kana, unified ideographs
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF
        or 0x20000 <= o <= 0x2FA1F
    )


def _is_word(ch: str) -> bool:
    return (ch.isalnum() or ch == "_") and not _is_cjk(ch)


class _WordChars(dict[str, bool]):
    """``_is_word`` by character, filled as characters are met. The boundary checks run for every raw
    match (twice, and once per character of a stem's inflection), and a dict look-up costs a fraction
    of a Python function call; the table stays as small as the set of characters seen."""

    def __missing__(self, ch: str) -> bool:
        value = self[ch] = _is_word(ch)
        return value


_WORD_CHAR = _WordChars()


def _lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    # One character lower-cases to two ('İ', U+0130, the only one in Unicode): keep it as it is so
    # offsets stay valid, and lower-case the rest a run at a time (one str.lower per run rather than
    # per character: Turkish articles took a tenth of the corpus's tagging time that way).
    return "\u0130".join(part.lower() for part in text.split("\u0130"))


def _cue_positions(cues: dict[int, list[int]], wanted: frozenset[int]) -> list[list[int]]:
    """The start offsets of each of the ``wanted`` cues that occur in the item (found once per term and
    item, then searched for each of the term's hits)."""
    # Walk the shorter side: a term may require dozens of cues, an item holds a few of them.
    if len(wanted) < len(cues):
        return [cues[c] for c in wanted if c in cues]
    return [p for c, p in cues.items() if c in wanted]


def _cue_within(found: list[list[int]], lo: int, hi: int) -> bool:
    """Whether one of the cues (``_cue_positions``) starts in [lo, hi]. A cue's start offsets are
    ascending (the automaton reports matches by end offset, and one cue id is one form, of one length),
    so a binary search finds the first one >= lo: a term with many hits next to a cue seen many times
    (a long article saying "troops" and "president" throughout) no longer compares every pair."""
    for positions in found:
        i = bisect_left(positions, lo)
        if i < len(positions) and positions[i] <= hi:
            return True
    return False


def reaches(score: float, threshold: float) -> bool:
    """Tagged: the score reaches the topic's threshold (and a topic with no evidence never is)."""
    return score >= threshold and score > 0


def _sat(count: float) -> float:
    return count if count <= 1.0 else 1.0 + math.log(count)


class _Entry(NamedTuple):
    """What one form stands for (a form can be a term of several topics and a cue at once). A tuple, so
    that the scan loop unpacks it instead of looking its attributes up for every raw match."""

    kind: int
    topic: int
    ref: int  # term index, cue id or exclude index
    stem: bool
    case_form: str | None


class _Form(NamedTuple):
    """A form of the automaton: its boundary checks (the same for all its entries: a side that is a CJK
    character needs none) and its entries. The entries that are whole words matched in any case (most of
    them) are split out by kind, so that the scan handles a common word that is a term of several topics
    and a cue ("army", "troops") without unpacking and testing each entry; the rest (stems, case-sensitive
    forms) are ``special``."""

    check_start: bool
    check_end: bool
    terms: tuple[tuple[int, int], ...]  # (topic, term index)
    cue: int  # cue id, or -1
    excludes: tuple[int, ...]  # topics
    special: tuple[_Entry, ...]


def _form(key: str, entries: list[_Entry]) -> _Form:
    plain = [e for e in entries if not e.stem and e.case_form is None]
    cues = [e.ref for e in plain if e.kind == _KIND_CUE]
    return _Form(
        not _is_cjk(key[0]),
        not _is_cjk(key[-1]),
        tuple((e.topic, e.ref) for e in plain if e.kind == _KIND_TERM),
        cues[0] if cues else -1,  # one cue id per distinct cue string, so at most one
        tuple(e.topic for e in plain if e.kind == _KIND_EXCLUDE),
        tuple(e for e in entries if e.stem or e.case_form is not None),
    )


# A raw hit of a term: (start, start - stop, stop, term index, surface as lower-cased). The first two
# fields are the sort key that puts overlapping hits longest first ("russian president" over
# "russian"). A plain tuple: a dense article has hundreds of hits, and an instance of a class costs a
# Python-level call each.
_Hit = tuple[int, int, int, int, str]
_BY_SPAN = itemgetter(0, 1)


def _tagger_version(taxonomy_version: str, embeddings: Embeddings | None) -> str:
    """What ``pipeline.taxonomy`` says: the taxonomy version, plus the embedding combiners in use (a
    digest of their parameters), so messages tagged with the extra on are told apart from the rest."""
    if embeddings is None:
        return taxonomy_version
    digest = hashlib.sha256(repr(sorted(embeddings.combiners.items())).encode()).hexdigest()[:12]
    return f"{taxonomy_version}+embeddings-{digest}"


# Why a hit did not count (``TopicExplanation.dropped``).
DROP_EXCLUDED = "inside an excluded phrase"
DROP_DATELINE = "in a dateline"
DROP_REQUIRES = "'requires' cue missing or too far"
DROP_UNLESS = "an 'unless' cue is present"
DROP_CONTEXT = "context term, and no other term of the topic"


_Trace = dict[str, dict[tuple[int, int], str]]  # reason -> (start, stop) of a dropped hit -> its words


def _note(trace: _Trace, why: str, hit: _Hit) -> None:
    trace.setdefault(why, {})[(hit[0], hit[2])] = hit[4]


def _dropped_words(trace: _Trace) -> dict[str, dict[str, int]]:
    """The dropped hits as words and counts, by reason. A place is counted once (several terms can
    match the same word) and a hit inside a longer one of the same reason ("china" in "in china") not
    at all, as overlapping hits that count keep the longest."""
    out: dict[str, dict[str, int]] = {}
    for why, spans in trace.items():
        words: dict[str, int] = {}
        last_end = -1
        for (start, stop), word in sorted(spans.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
            if start < last_end:
                continue
            last_end = stop
            words[word] = words.get(word, 0) + 1
        out[why] = dict(sorted(words.items(), key=lambda kv: -kv[1]))
    return out


def _reach(spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Spans sorted by start, and for each prefix of them the furthest end: ``_covers`` then asks in
    O(log n) whether any span holds a range (the spans may overlap or nest)."""
    ordered = sorted(spans)
    starts = [s for s, _ in ordered]
    reach: list[int] = []
    furthest = -1
    for _, e in ordered:
        furthest = max(furthest, e)
        reach.append(furthest)
    return starts, reach


def _covers(starts: list[int], reach: list[int], start: int, stop: int) -> bool:
    """Some span (s, e) has s <= start and stop <= e."""
    i = bisect_right(starts, start) - 1
    return i >= 0 and reach[i] >= stop


class Tagger:
    """Tags items against a taxonomy. Build once (it compiles the automaton), call ``tag`` many times."""

    def __init__(self, taxonomy: Taxonomy, *, embeddings: Embeddings | bool | None = None) -> None:
        """``embeddings``: None follows the NEWSWIRE_EMBEDDINGS switch (off when unset), True uses the
        shipped embedding combiners (needs the ``embeddings`` extra), False is the keyword tagger."""
        self.taxonomy = taxonomy
        self._topics = taxonomy.topics
        # Per topic: the combiner's weights without its "bow:" ones, and those as word -> weight.
        self._weights: list[tuple[tuple[str, float], ...]] = []
        self._bow: list[dict[str, float]] = []
        for topic in self._topics:
            ws = topic.model.weights if topic.model is not None else ()
            self._weights.append(tuple((n, w) for n, w in ws if not n.startswith("bow:")))
            self._bow.append({n[4:]: w for n, w in ws if n.startswith("bow:")})
        self._labels = [[t.label for t in topic.terms] for topic in self._topics]
        cue_ids: dict[str, int] = {}
        # Per topic, per term: which cue ids it requires / must not see.
        self._requires: list[list[frozenset[int]]] = []
        self._unless: list[list[frozenset[int]]] = []
        self._dampen: list[frozenset[int]] = []
        self._windows = [[t.window for t in topic.terms] for topic in self._topics]
        # Per topic: every cue id its terms and dampening look at.
        self._topic_cues: list[frozenset[int]] = []
        for topic in self._topics:
            self._dampen.append(frozenset(cue_ids.setdefault(c, len(cue_ids)) for c in topic.dampen))
            req: list[frozenset[int]] = []
            unl: list[frozenset[int]] = []
            for term in topic.terms:
                req.append(frozenset(cue_ids.setdefault(c, len(cue_ids)) for c in term.requires))
                unl.append(frozenset(cue_ids.setdefault(c, len(cue_ids)) for c in term.unless))
            self._requires.append(req)
            self._unless.append(unl)
            self._topic_cues.append(frozenset().union(self._dampen[-1], *req, *unl))
        table: dict[str, list[_Entry]] = {}

        def add(form: str, kind: int, topic: int, index: int, case_form: str | None = None) -> None:
            stem = form.endswith("*")
            key = form[:-1] if stem else form
            entry = _Entry(kind=kind, topic=topic, ref=index, stem=stem, case_form=case_form)
            table.setdefault(key, []).append(entry)

        for ti, topic in enumerate(self._topics):
            for xi, term in enumerate(topic.terms):
                for form in term.forms:
                    if term.case_sensitive:
                        add(_lower(form), _KIND_TERM, ti, xi, case_form=form)
                    else:
                        add(form, _KIND_TERM, ti, xi)
            for ei, phrase in enumerate(topic.exclude):
                add(phrase, _KIND_EXCLUDE, ti, ei)
        for cue, cid in cue_ids.items():
            add(cue, _KIND_CUE, -1, cid)
        # Standard match semantics with overlapping matches: every occurrence of every form, as the
        # scoring expects (it picks the longest overlapping term itself, per topic). A DFA scans the
        # corpus's articles ~1.5x faster than the contiguous NFA, but its memory grows ~1.4 KB a form
        # (the shipped taxonomy's 1,500 forms: ~3 MiB; 100,000 forms: ~140 MiB against ~11 MiB), so
        # a large user taxonomy gets the NFA.
        self._forms = list(table)
        self._form_info = [_form(k, table[k]) for k in self._forms]
        self._implementation = (
            ahocorasick_rs.Implementation.DFA
            if len(self._forms) <= DFA_MAX_FORMS
            else ahocorasick_rs.Implementation.ContiguousNFA
        )
        self._matcher = ahocorasick_rs.AhoCorasick(
            self._forms, matchkind=ahocorasick_rs.MatchKind.Standard, implementation=self._implementation
        )
        known_cjk = {c for key in table for c in key if _is_cjk(c)}
        self._known_cjk = "".join(sorted(known_cjk))
        self._count_cjk = _CjkCounter({ord(c) for c in known_cjk})
        self.embeddings = resolve(embeddings, taxonomy.version, taxonomy.slugs, self.inputs_digest)
        # Topic index -> embedding combiner, for the topics that have one.
        self._emb = (
            {}
            if self.embeddings is None
            else {
                ti: self.embeddings.combiners[t.slug]
                for ti, t in enumerate(self._topics)
                if t.slug in self.embeddings.combiners
            }
        )
        self.version = _tagger_version(taxonomy.version, self.embeddings)

    # ------------------------------------------------------------------ public

    def inputs_digest(self, slugs: Sequence[str]) -> str | None:
        """What a scorer reading these topics' keyword features depends on, as a digest: the topics'
        content, and the CJK characters of every form of the taxonomy (a CJK character in no form
        counts toward the word estimate, which normalises every topic's evidence). None when one of
        the topics is missing. Embedding combiners are keyed to it: adding a topic keeps them."""
        return self.taxonomy.digest(slugs, extra=self._known_cjk)

    def tag(self, title: str | None, text: str, *, lead: str | None = None) -> list[TopicTag]:
        """Topics whose score reaches their threshold, best first."""
        scored = self.score(title, text, lead=lead)
        tags = [t for t, topic in zip(scored, self._topics) if reaches(t.score, topic.threshold)]
        tags.sort(key=lambda t: (-t.score, t.slug))
        return tags

    def score(self, title: str | None, text: str, *, lead: str | None = None) -> list[TopicTag]:
        """Every topic's score and matches, in taxonomy order, tagged or not (for evaluation/tuning)."""
        return self._scores(self._evidences(title, text, lead=lead), title, text)

    def _scores(self, evs: list[_Evidence], title: str | None, text: str) -> list[TopicTag]:
        words: list[set[str]] = []  # the item's context words, computed once if a combiner needs them
        tags = [self._final(ti, evs, title, text, words) for ti in range(len(self._topics))]
        if self._emb:
            self._embedding_scores(tags, evs, title, text)
        return tags

    def explain(self, title: str | None, text: str, *, lead: str | None = None) -> list[TopicExplanation]:
        """Why each topic scored what it did, in taxonomy order: for an analyst checking a taxonomy edit
        (``newswire tag``)."""
        traces: list[_Trace] = [{} for _ in self._topics]
        evs = self._evidences(title, text, lead=lead, traces=traces)
        scored = self._scores(evs, title, text)
        out = []
        for ti, (topic, tag, ev) in enumerate(zip(self._topics, scored, evs, strict=True)):
            labels = self._labels[ti]
            terms: dict[str, float] = {}
            for idx, c in ev.contrib.items():
                terms[labels[idx]] = terms.get(labels[idx], 0.0) + c
            filtered: dict[str, int] = {}
            for idx, k in ev.loose.items():
                filtered[labels[idx]] = filtered.get(labels[idx], 0) + k
            if ev.raw <= 0.0:
                scorer = "none"
            elif ti in self._emb:
                scorer = "embeddings"
            else:
                scorer = "combiner" if topic.model is not None else "plain"
            out.append(
                TopicExplanation(
                    slug=topic.slug,
                    name=topic.name,
                    score=tag.score,
                    threshold=topic.threshold,
                    tagged=reaches(tag.score, topic.threshold),
                    scorer=scorer,
                    evidence=round(ev.raw, 4),
                    matches=dict(tag.matches),
                    terms={k: round(v, 4) for k, v in sorted(terms.items(), key=lambda kv: -kv[1])},
                    filtered=filtered,
                    damped=ev.damped,
                    listed=round(ev.listed, 4),
                    dropped=_dropped_words(traces[ti]),
                )
            )
        return out

    def _embedding_scores(
        self, tags: list[TopicTag], evs: list[_Evidence], title: str | None, text: str
    ) -> None:
        """Re-score, in place, the topics with an embedding combiner and kept evidence. The item is
        embedded at most once, and only when such a topic matched (no match, no tag, no cost)."""
        assert self.embeddings is not None
        vector: Sequence[float] | None = None
        for ti, comb in self._emb.items():
            if evs[ti].raw <= 0.0:
                continue
            if vector is None:
                vector = self.embeddings.encoder(embedding_text(title, text, comb.max_chars))
            # The combiner was fitted with the topic's threshold folded into its bias.
            score = comb.score(self._features(ti, evs), vector)
            tags[ti] = TopicTag(slug=tags[ti].slug, score=round(score, 4), matches=tags[ti].matches)

    def _scan(self, low: str) -> list[tuple[int, int, int]]:
        """Every occurrence of every form in ``low``: (form index, start, stop), by stop offset."""
        try:
            return self._matcher.find_matches_as_indexes(low, overlapping=True)
        except UnicodeEncodeError:
            return self._matcher.find_matches_as_indexes(
                _LONE_SURROGATE.sub("\ufffd", low), overlapping=True
            )

    def _evidences(
        self,
        title: str | None,
        text: str,
        *,
        lead: str | None = None,
        traces: list[_Trace] | None = None,
    ) -> list[_Evidence]:
        title = normalise_text(title or "")
        text = normalise_text(text or "")
        lead_n = normalise_text(lead) if lead else ""
        # Layout of the one string scanned: title, [separate lead], text. Regions are offsets into it.
        parts = [title, "\n\n"]
        title_end = len(title)
        if lead_n and not text.startswith(lead_n[: min(len(lead_n), 200)]):
            lead_start = title_end + 2
            parts.extend([lead_n, "\n\n"])
            lead_end = lead_start + len(lead_n)
            text_start = lead_end + 2
        else:
            text_start = title_end + 2
            lead_start = text_start
            lead_len = len(lead_n) if lead_n else _default_lead_len(text)
            lead_end = text_start + lead_len
        parts.append(text)
        full = "".join(parts)
        low = _lower(full)
        n = len(full)
        cjk_chars = 0
        if not low.isascii():
            cjk_chars = self._count_cjk(low)

        dead: list[tuple[int, int]] = []  # datelines: no topic evidence inside
        for start in (text_start, lead_start) if lead_start != text_start else (text_start,):
            m = _DATELINE_RE.match(full, start, min(n, start + 80))
            if m:
                dead.append((m.start(), m.end()))

        n_topics = len(self._topics)
        hits: list[list[_Hit]] = [[] for _ in range(n_topics)]
        excl: list[list[tuple[int, int]]] = [[] for _ in range(n_topics)]
        cues: dict[int, list[int]] = {}  # cue id -> start offsets

        word_char = _WORD_CHAR
        form_info = self._form_info
        for fi, start, found_stop in self._scan(low):
            check_start, check_end, terms, cue, excludes, special = form_info[fi]
            if check_start and start > 0 and word_char[full[start - 1]]:
                continue
            ends_word = not (check_end and found_stop < n and word_char[full[found_stop]])
            if ends_word:
                if terms:
                    surface = low[start:found_stop]
                    for topic, ref in terms:
                        hits[topic].append((start, start - found_stop, found_stop, ref, surface))
                if cue >= 0:
                    cues.setdefault(cue, []).append(start)
                for topic in excludes:
                    excl[topic].append((start, found_stop))
            for kind, topic, ref, stem, case_form in special:
                stop = found_stop
                if stem:
                    while stop < n and word_char[full[stop]]:
                        stop += 1
                elif not ends_word:
                    continue
                if case_form is not None and full[start:stop] != case_form:
                    continue
                if kind == _KIND_TERM:
                    hits[topic].append((start, start - stop, stop, ref, low[start:stop]))
                elif kind == _KIND_CUE:
                    cues.setdefault(ref, []).append(start)
                else:
                    excl[topic].append((start, stop))

        # Words of the text (and separate lead): spaces, plus about one word per two CJK characters
        # (counted above: the CJK characters that are part of no form; those that are part of one are
        # too few to matter).
        spaces = full.count(" ", text_start) + full.count("\n", text_start) + 1
        if lead_start != text_start:
            spaces += full.count(" ", lead_start, lead_end) + full.count("\n", lead_start, lead_end)
        words = spaces + cjk_chars // 2
        norm = (words / NORM_WORDS) ** NORM_EXPONENT if words > NORM_WORDS else 1.0
        cjk = (cjk_chars // 2) / words
        return [
            self._evidence(
                ti, full, hits[ti], excl[ti], dead, cues, norm, title_end, lead_start, lead_end, words, cjk,
                None if traces is None else traces[ti],
            )
            for ti in range(n_topics)
        ]

    # ------------------------------------------------------------------ scoring

    def _evidence(
        self,
        ti: int,
        full: str,
        hits: list[_Hit],
        excluded: list[tuple[int, int]],
        dead: list[tuple[int, int]],
        cues: dict[int, list[int]],
        norm: float,
        title_end: int,
        lead_start: int,
        lead_end: int,
        words: int,
        cjk: float,
        trace: _Trace | None = None,
    ) -> _Evidence:
        """``trace``, when given (``explain`` only), collects the words of the hits that were dropped, by
        reason; the scoring path passes None and pays nothing for it."""
        topic = self._topics[ti]
        if not hits:
            return _Evidence(words, cjk)
        # the exclude spans sorted once, for the hits, the cues and the trace (datelines are rarer)
        ex_starts, ex_reach = _reach(excluded) if excluded else ([], [])
        if excluded or dead:
            starts, reach = _reach(excluded + dead) if dead else (ex_starts, ex_reach)
            if trace is not None:
                for h in hits:
                    if _covers(starts, reach, h[0], h[2]):
                        why = DROP_EXCLUDED if _covers(ex_starts, ex_reach, h[0], h[2]) else DROP_DATELINE
                        _note(trace, why, h)
            hits = [h for h in hits if not _covers(starts, reach, h[0], h[2])]
        if excluded:
            # An excluded phrase is no cue either: "general" in "attorney general" does not make a coup military.
            # (A dateline still is: "KABUL -" says where the story happens.) A cue is dropped when it starts
            # inside an excluded phrase. Only this topic's own cues (requires, unless, dampen) are looked at,
            # and the item's cue table is copied only when one of them changes.
            own = cues
            for cue in self._topic_cues[ti].intersection(own):
                at = own[cue]
                inside = [p for p in at if not _covers(ex_starts, ex_reach, p, p + 1)]
                if len(inside) != len(at):
                    if cues is own:
                        cues = dict(own)
                    if inside:
                        cues[cue] = inside
                    else:
                        del cues[cue]
        # Overlapping hits of one topic: the longest wins ("russian president" over "russian").
        hits.sort(key=_BY_SPAN)
        kept: list[_Hit] = []
        last_end = -1
        terms = topic.terms
        requires = self._requires[ti]
        windows = self._windows[ti]
        unless = self._unless[ti]
        loose: dict[int, int] = {}  # term -> hits dropped for a missing `requires` cue (combiner only)
        near: dict[int, list[list[int]]] = {}  # term -> where its windowed `requires` cues start
        for h in hits:
            start, _, stop, term, _ = h
            if start < last_end:
                continue
            req = requires[term]
            if req:
                window = windows[term]
                if window is None:
                    if req.isdisjoint(cues):  # walks the item's few cues, not the term's many
                        loose[term] = loose.get(term, 0) + 1
                        if trace is not None:
                            _note(trace, DROP_REQUIRES, h)
                        continue
                else:
                    found = near.get(term)
                    if found is None:
                        found = near[term] = _cue_positions(cues, req)
                    if not found or not _cue_within(found, start - window, stop + window):
                        loose[term] = loose.get(term, 0) + 1
                        if trace is not None:
                            _note(trace, DROP_REQUIRES, h)
                        continue
            unl = unless[term]
            if unl and not unl.isdisjoint(cues):
                if trace is not None:
                    _note(trace, DROP_UNLESS, h)
                continue
            kept.append(h)
            last_end = stop
        if kept and all(terms[h[3]].context for h in kept):
            if trace is not None:
                for h in kept:
                    _note(trace, DROP_CONTEXT, h)
            kept = []
        if trace is not None and kept:
            # a word that a kept hit covers counted ("china" in a counted "south china sea", or a word
            # one term could not count but another term did): it is no "not counted" word
            starts, reach = _reach([(h[0], h[2]) for h in kept])
            for why in list(trace):
                for covered in [sp for sp in trace[why] if _covers(starts, reach, sp[0], sp[1])]:
                    del trace[why][covered]
                if not trace[why]:
                    del trace[why]
        ev = _Evidence(words, cjk, loose=loose)
        if not kept:
            return ev
        per_term: dict[int, list[float]] = {}
        matches: dict[str, int] = {}
        listed = 0
        for start, _, stop, term, surface in kept:
            counts = per_term.setdefault(term, [0.0, 0.0])
            factor = 1.0
            if _in_list(full, start, stop):
                factor = LIST_FACTOR
                listed += 1
            if start < title_end:
                counts[0] += factor
            elif lead_start <= start < lead_end:
                counts[1] += topic.lead_weight * factor
            else:
                counts[1] += factor
            matches[surface] = matches.get(surface, 0) + 1
        raw = 0.0
        title = 0.0
        contrib: dict[int, float] = {}
        for idx, (in_title, in_text) in per_term.items():
            weight = terms[idx].weight
            t = weight * topic.title_weight * _sat(in_title)
            c = t + weight * _sat(in_text) / norm
            contrib[idx] = c
            raw += c
            title += t
        damp = self._dampen[ti]
        ev.damped = not damp.isdisjoint(cues)
        if ev.damped:
            raw *= topic.dampen_factor
            title *= topic.dampen_factor
        ev.raw = raw
        ev.title = title
        ev.contrib = contrib
        ev.matches = matches
        ev.listed = listed / len(kept)
        ev.hits = len(kept)
        # Where the evidence sits in the text: a subject is named early and throughout, a passing
        # mention once, somewhere.
        span = len(full) - lead_start
        if span > 0:
            body = [h[0] for h in kept if h[0] >= lead_start]
            if body:
                ev.first = (body[0] - lead_start) / span
                ev.spread = (body[-1] - body[0]) / span
            else:
                ev.first = 1.0
        return ev

    def _features(self, ti: int, evs: list[_Evidence]) -> dict[str, float]:
        """The combiner's inputs for topic ``ti`` (names as in the topic's ``model.weights``)."""
        ev = evs[ti]
        labels = self._labels[ti]
        f: dict[str, float] = {
            "evidence": math.log1p(ev.raw),
            "title": math.log1p(ev.title),
            "terms": math.log1p(sum(1 for i in ev.contrib if not self._topics[ti].terms[i].context)),
            "short": 1.0 if ev.words <= NORM_WORDS else 0.0,
            "words": math.log(max(ev.words, 1)) / 5.0,
            "damp": 1.0 if ev.damped else 0.0,
            "listed": ev.listed,
            "filtered": math.log1p(sum(ev.loose.values())),
            "short_evidence": math.log1p(ev.raw) if ev.words <= NORM_WORDS else 0.0,
            "hits": math.log1p(ev.hits),
            "first": ev.first,
            "spread": ev.spread,
            "cjk": ev.cjk,
        }
        for idx, c in ev.contrib.items():
            name = "term:" + labels[idx]
            f[name] = f.get(name, 0.0) + math.log1p(c)
        for idx, k in ev.loose.items():
            name = "loose:" + labels[idx]
            f[name] = f.get(name, 0.0) + math.log1p(k)
        for oi, other in enumerate(evs):
            if oi != ti:
                f["other:" + self._topics[oi].slug] = math.log1p(other.raw)
        return f

    def _final(
        self, ti: int, evs: list[_Evidence], title: str | None, text: str, words: list[set[str]]
    ) -> TopicTag:
        topic = self._topics[ti]
        ev = evs[ti]
        if ev.raw <= 0.0:
            # No kept evidence, no tag, whatever a combiner would say: every tag names its matches.
            return TopicTag(slug=topic.slug, score=0.0, matches={})
        model = topic.model
        if model is None:
            score = ev.raw / (ev.raw + SCORE_HALF)
        else:
            f = self._features(ti, evs)
            z = model.bias
            for name, w in self._weights[ti]:
                v = f.get(name)
                if v:
                    z += w * v
            bow = self._bow[ti]
            if bow:
                if not words:
                    words.append(bow_tokens(title, text))
                z += BOW_SCALE * sum(bow.get(t, 0.0) for t in words[0])
            score = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return TopicTag(slug=topic.slug, score=round(score, 4), matches=ev.matches)

    def features(self, title: str | None, text: str, *, lead: str | None = None) -> list[dict[str, float]]:
        """Every topic's combiner inputs, in taxonomy order (for training the combiner, eval/)."""
        evs = self._evidences(title, text, lead=lead)
        return [self._features(ti, evs) for ti in range(len(self._topics))]


@dataclass(frozen=True)
class TopicExplanation:
    """How one topic was scored for one item (``Tagger.explain``).

    ``scorer``: "none" (no kept evidence, so never tagged), "plain" (``r / (r + 6)``), "combiner" (the
    topic's ``model:`` block) or "embeddings" (the optional extra). ``terms``: each matched term's
    weighted evidence by label, largest first; ``filtered``: hits dropped because a ``requires`` cue was
    missing or too far, by term label; ``damped``: a ``dampen`` cue scaled the evidence; ``listed``: the
    share of hits that sat in an enumeration (counted a quarter); ``dropped``: every hit that did not
    count, as the words found in the text, by reason (the ``DROP_*`` strings).
    """

    slug: str
    name: str
    score: float
    threshold: float
    tagged: bool
    scorer: str
    evidence: float
    matches: dict[str, int]
    terms: dict[str, float]
    filtered: dict[str, int]
    damped: bool
    listed: float
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class _Evidence:
    """One topic's keyword evidence in one item, before it becomes a score."""

    words: int
    cjk: float  # share of the words that are CJK (estimated)
    raw: float = 0.0
    title: float = 0.0
    contrib: dict[int, float] = field(default_factory=dict)  # term index -> weighted evidence
    loose: dict[int, int] = field(default_factory=dict)
    matches: dict[str, int] = field(default_factory=dict)
    listed: float = 0.0
    damped: bool = False
    hits: int = 0
    first: float = 0.0
    spread: float = 0.0


def _default_lead_len(text: str) -> int:
    if len(text) <= LEAD_CHARS:
        return len(text)
    cut = text.find(" ", LEAD_CHARS)
    return len(text) if cut < 0 else cut
