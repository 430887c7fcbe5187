"""The tagger's fast paths give what the plain versions they replace give: the CJK mask against a
regex substitution, the list-separator and list-item look-ups against the regexes searched from the
start of the window."""

from __future__ import annotations

import random
import re

import pytest
from newswire.processors import tagging as T


def _reference_mask(known: set[int]) -> re.Pattern[str]:
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
def test_cjk_mask_equals_a_regex_substitution(text: str) -> None:
    known = {ord(c) for c in "中国俄罗斯军"}
    mask = T._CjkMask(known)
    expected, count = _reference_mask(known).subn(T._UNKNOWN, text)
    assert mask(text) == (expected, count)
    assert len(mask(text)[0]) == len(text)  # one for one: offsets stay valid


def _windows() -> list[str]:
    rng = random.Random(20261206)
    alphabet = list("ab Ac,.'-\t\n、，和与中国俄罗斯 ") + [
        " and ", " or ", " или ", " и ", " e ", " o ", " y ", "\u00a0", "Ü", "The ", " the ", "İ", "\u3000"
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
