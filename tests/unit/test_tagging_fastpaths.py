"""The tagger's fast paths give what the plain versions they replace give: the CJK count against a
regex count, the list-separator and list-item look-ups against the regexes searched from the
start of the window."""

from __future__ import annotations

import random
import re

import pytest

from newswire.processors import tagging as T


def _reference_unknown(known: set[int]) -> re.Pattern[str]:
    unknown = [
        cp for lo, hi in T._CJK_RANGES for cp in range(lo, hi + 1) if cp not in known
    ]
    return re.compile("[" + "".join(re.escape(chr(cp)) for cp in unknown) + "]")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain ascii text",
        "中华人民共和国外交部发言人说，俄罗斯和中国",
        "ロシア軍のクーデター、カタカナ",
        "lone \udcff surrogate 中国\udc80",
        "astral 𠀀中国𠀁 and fullwidth ＣＨＩＮＡ",
        "ｱ半角 and 가나다 Hangul",
    ],
)
def test_cjk_count_equals_a_regex_count(text: str) -> None:
    known = {ord(c) for c in "中国俄罗斯军"}
    assert T._CjkCounter(known)(text) == len(_reference_unknown(known).findall(text))


@pytest.mark.parametrize(
    "text",
    [
        "Moskau \udcff Russland: Putin sagt",
        "\ud800Putin\udfff und 俄罗斯 \udc80",
        "putin\udcff",
    ],
)
def test_lone_surrogates_neither_fail_nor_shift_offsets(text: str) -> None:
    tagger = T.Tagger(T.load_taxonomy(None))
    clean = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    # A lone surrogate counts as the replacement character would: same hits, same places, same scores.
    assert tagger.score(None, text) == tagger.score(None, clean)
    assert any(t.slug == "russia" and t.matches for t in tagger.score(None, text))


def _windows() -> list[str]:
    rng = random.Random(20261206)
    alphabet = list("ab Ac,.'-\t\n、，和与中国俄罗斯 ") + [
        " and ", " or ", " или ", " и ", " e ", " o ", " y ", "\u00a0", "Ü", "The ", " the ", "İ", "\u3000", " l'", " la "
    ]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(20000)]


def test_list_separator_lookup_equals_the_regex_search() -> None:
    for left in _windows():
        m = T._LIST_SEP_LEFT.search(left)
        assert T._sep_left_start(left) == (m.start() if m else None), repr(left)


def test_list_item_lookup_equals_the_regex_search() -> None:
    for left in _windows():
        a, b = T._LIST_ITEM_LEFT.search(left), T._item_left(left)
        assert (a.span() if a else None) == (b.span() if b else None), repr(left)


def test_enumerations_still_count_a_quarter_in_chinese_and_english() -> None:
    text = "美国、日本、中国和印度代表出席了会议。"
    start = text.index("中国")
    assert T._in_list(text, start, start + 2)
    english = "Delegates from the US, Japan, China and India met."
    start = english.index("China")
    assert T._in_list(english, start, start + 5)
    assert not T._in_list("China said on Monday.", 0, 5)


@pytest.mark.parametrize(
    ("text", "name", "listed"),
    [
        ("Duels entre la Chine, la Russie, le Japon et le Brésil.", "Russie", True),
        ("Duels entre la Chine, la Russie, le Japon et le Brésil.", "Chine", True),
        ("avec la France, l'Inde et la Chine.", "Chine", True),
        ("Streit zwischen der EU, den USA und China", "China", True),
        ("de Estados Unidos, de la China y de Rusia", "China", True),
        ("La Chine a dit lundi que la Russie", "Chine", False),
        ("Pékin et la Russie renforcent leurs liens.", "Russie", False),
    ],
)
def test_enumerations_with_articles(text: str, name: str, listed: bool) -> None:
    start = text.index(name)
    assert T._in_list(text, start, start + len(name)) is listed


@pytest.mark.parametrize(
    "text",
    ["İstanbul", "İSTANBUL'DA Rusya İLE ÇİN", "a İ b İİ c", "no dotted capital", "İ", "Moskova'da İ"],
)
def test_lower_keeps_offsets_and_lowers_everything_but_the_dotted_capital_i(text: str) -> None:
    low = T._lower(text)
    assert len(low) == len(text)
    assert low == "".join(c if c == "\u0130" else c.lower() for c in text)


def test_a_turkish_article_is_tagged_through_the_dotted_capital_i() -> None:
    tagger = T.Tagger(T.load_taxonomy(None))
    text = "İSTANBUL - Rusya Devlet Başkanı Putin, Kremlin'de açıklama yaptı. " * 3
    tags = {t.slug: t for t in tagger.tag("Putin'den açıklama", text)}
    assert "russia" in tags
    assert tags["russia"].matches.get("putin", 0) >= 3


def test_the_scan_finds_every_occurrence_of_every_form_overlaps_included() -> None:
    tagger = T.Tagger(T.load_taxonomy(None))
    forms = tagger._forms
    assert len(forms) == len(tagger._form_info) > 1000
    rng = random.Random(7)
    # Texts stitched from pieces of forms, so that forms overlap, nest and run into each other.
    pieces = [f[: rng.randint(1, len(f))] for f in rng.sample(forms, 400)] + forms[:200] + [" ", "x"]
    for _ in range(80):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        expected = sorted(
            (pi, i, i + len(form))
            for pi, form in enumerate(forms)
            for i in range(len(text))
            if text.startswith(form, i)
        )
        assert sorted(tagger._scan(text)) == expected


def test_a_large_taxonomy_gets_the_nfa_and_the_same_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [
        ("Kremlin says Russia's army will stay", "Putin and Lavrov met generals in Moscow; России, Россию."),
        ("中国外交部", "中华人民共和国外交部发言人说，俄罗斯和中国将举行联合军演。北京表示。"),
        ("Coup in Niger", "The junta detained the president; soldiers seized the PLA-style compound in Niamey."),
        ("Taliban take Kabul", "Afghanistan's government fell as US troops withdrew from Bagram."),
        ("Borussia Dortmund", "Moscow, Idaho: a Russian doll shop opened; made in China toys were sold."),
    ]
    dfa = T.Tagger(T.load_taxonomy(None), embeddings=False)
    monkeypatch.setattr(T, "DFA_MAX_FORMS", 0)
    nfa = T.Tagger(T.load_taxonomy(None), embeddings=False)
    assert "DFA" in str(dfa._implementation) and "NFA" in str(nfa._implementation)
    for title, text in texts:
        assert nfa.score(title, text) == dfa.score(title, text)
    assert {t.slug for t in nfa.tag(*texts[0])} >= {"russia"}
