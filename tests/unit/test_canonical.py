"""The canonical-URL, id and hash rules are part of the message contract v1: pinned here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from newswire.processors.canonical import (
    TRACKING_PARAMS,
    InvalidURL,
    article_id,
    canonical_url,
    content_hash,
    normalise_text,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "canonical-urls.md"

# (link, base, canonical URL, id). The same rows are the table in docs/canonical-urls.md.
PINNED: list[tuple[str, str | None, str, str]] = [
    ("HTTPS://WWW.Example.COM", None, "https://www.example.com/", "49365e2b6b265ccba4bed01f5fa3cbcf"),
    ("http://example.com:80/news/", None, "http://example.com/news/", "739c7dbecf8a50dfb800a7ac1106e927"),
    ("https://example.com:443/a?b=1", None, "https://example.com/a?b=1", "6cb547ac73ee23b7a1582362e5f81431"),
    ("https://example.com:8443/a", None, "https://example.com:8443/a", "be01f593553344991b58f8c4c408bb6c"),
    ("https://user:secret@example.com/a", None, "https://example.com/a", "2dce0a4c50441bfccfa9caf4b58c3cba"),
    ("https://www.example.com./a", None, "https://www.example.com/a", "7ea22417f447d9f9e1b7d35aae3f76e9"),
    (
        "https://bücher.example/straße",
        None,
        "https://xn--bcher-kva.example/stra%C3%9Fe",
        "de9dde0c669372499940bda26dc97e47",
    ),
    (
        "https://例え.テスト/記事?q=東京",
        None,
        "https://xn--r8jz45g.xn--zckzah/%E8%A8%98%E4%BA%8B?q=%E6%9D%B1%E4%BA%AC",
        "7e2d06ed59f4b21daf3f0090cc4e290f",
    ),
    ("https://example.com/a/./b/../c/", None, "https://example.com/a/c/", "b17f6730e6ff91bff37058f2c835c36a"),
    (
        "https://example.com/%7euser/caf%c3%a9/%2f%41",
        None,
        "https://example.com/~user/caf%C3%A9/%2FA",
        "ab0e57659d633bbbf9285a6d19394ce3",
    ),
    (
        "https://example.com/a b?q=x y",
        None,
        "https://example.com/a%20b?q=x%20y",
        "cff74e89106266dd85b48972c7a8c927",
    ),
    (
        "https://example.com/story#comments",
        None,
        "https://example.com/story",
        "ab116c15d8ac8b5285e0a8c70be0bf03",
    ),
    (
        "https://example.com/story?utm_source=rss&utm_medium=feed&id=7",
        None,
        "https://example.com/story?id=7",
        "33fadfd2d60dbc01934d145a97f9bcbd",
    ),
    (
        "https://www.bbc.co.uk/news/world-1?at_medium=RSS&at_campaign=KARANGA",
        None,
        "https://www.bbc.co.uk/news/world-1",
        "0df88406365b61bf198c9e2aa2f09887",
    ),
    (
        "https://example.com/?fbclid=IwAR0&gclid=x&page=2&_ga=1.2",
        None,
        "https://example.com/?page=2",
        "fc3501cc6de3f0c1c4998394302ad539",
    ),
    (
        "https://example.com/list?b=2&a=1&b=1&a=2",
        None,
        "https://example.com/list?a=1&a=2&b=2&b=1",
        "975ee7819dbea5b7373d906fcdd6db47",
    ),
    ("https://example.com/a?&&x=1&", None, "https://example.com/a?x=1", "4c70119c7bfdd28cfbae5905985d9f0d"),
    (
        "../world/story-2?ocid=rss",
        "https://example.com/news/uk/index.xml",
        "https://example.com/news/world/story-2",
        "8f4ad96ae99b7ae7575659a819cec4bd",
    ),
    (
        "//cdn.example.com/x",
        "http://example.com/feed",
        "http://cdn.example.com/x",
        "337482d8bf2804baa40578b060639335",
    ),
    ("http://[2001:DB8::1]:80/x", None, "http://[2001:db8::1]/x", "927d6ec30a80be000525c2d32454e14e"),
    ("http://example.com/a", None, "http://example.com/a", "5bd48fa66118084cc32779267a31116d"),
    ("https://example.com/a", None, "https://example.com/a", "2dce0a4c50441bfccfa9caf4b58c3cba"),
]


@pytest.mark.parametrize(("link", "base", "canonical", "ident"), PINNED)
def test_pinned_table(link: str, base: str | None, canonical: str, ident: str) -> None:
    assert canonical_url(link, base) == canonical
    assert article_id(canonical) == ident


def test_doc_table_matches_pinned_table() -> None:
    rows = []
    for line in DOC.read_text("utf-8").splitlines():
        if line.startswith("| `"):
            cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            rows.append((cells[0], cells[1] or None, cells[2], cells[3]))
    assert rows == PINNED


def test_doc_lists_every_tracking_parameter() -> None:
    text = DOC.read_text("utf-8")
    missing = [name for name in TRACKING_PARAMS if f"`{name}`" not in text]
    assert missing == []


def test_article_id_is_sha256_prefix() -> None:
    url = "https://example.com/a"
    assert article_id(url) == hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
    assert len(article_id(url)) == 32


def test_canonical_url_is_idempotent() -> None:
    for link, base, canonical, _ in PINNED:
        assert canonical_url(canonical) == canonical, link


@pytest.mark.parametrize(
    "name",
    sorted(TRACKING_PARAMS) + ["utm_source", "utm_whatever", "UTM_Medium", "FBCLID", "%75tm_source"],
)
def test_every_tracking_parameter_is_dropped(name: str) -> None:
    assert canonical_url(f"https://example.com/a?{name}=1&id=2") == "https://example.com/a?id=2"


def test_parameters_that_look_like_tracking_are_kept() -> None:
    # Only the listed names and the utm_ prefix: "utm" alone, "gclid2", "ref" select content or may.
    url = "https://example.com/a?utm=1&gclid2=2&ref=3&at_custom5=4"
    assert canonical_url(url) == "https://example.com/a?at_custom5=4&gclid2=2&ref=3&utm=1"


def test_query_keeps_reserved_escapes_and_plus() -> None:
    assert (
        canonical_url("https://example.com/s?q=a%26b%3dc+d&x=%2B")
        == "https://example.com/s?q=a%26b%3Dc+d&x=%2B"
    )


def test_stray_percent_is_escaped() -> None:
    assert canonical_url("https://example.com/100%/x%zz") == "https://example.com/100%25/x%25zz"


def test_encoded_dots_are_dot_segments() -> None:
    assert canonical_url("https://example.com/a/%2e%2E/b") == "https://example.com/b"


def test_dot_segments_never_climb_above_root() -> None:
    assert canonical_url("https://example.com/../../a/..") == "https://example.com/"


def test_surrounding_whitespace_and_embedded_newlines_are_ignored() -> None:
    assert canonical_url("  https://example.com/a\n  ") == "https://example.com/a"


def test_absolute_link_ignores_base() -> None:
    assert canonical_url("https://other.example/x", "https://example.com/feed") == "https://other.example/x"


def test_percent_encoded_host_is_decoded() -> None:
    assert canonical_url("https://%65xample.com/") == "https://example.com/"


@pytest.mark.parametrize(
    "link",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "data:text/html,hi",
        "mailto:someone@example.com",
        "/relative/without/base",
        "http://",
        "https://:443/",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "http://example.com:port/",
    ],
)
def test_invalid_urls_raise(link: str) -> None:
    with pytest.raises(InvalidURL):
        canonical_url(link)


def test_invalid_url_is_a_value_error_with_the_url_in_its_message() -> None:
    with pytest.raises(ValueError, match="ftp"):
        canonical_url("ftp://example.com/file")


def test_normalise_text() -> None:
    decomposed = "Cafe\u0301\t\n  au\u00a0lait \u2003 "
    assert normalise_text(decomposed) == "Caf\u00e9 au lait"
    assert normalise_text("") == ""


def test_normalise_text_is_the_frozen_regex_definition() -> None:
    r"""The contract (v1) defines the normalised text as NFC, re.sub(r"\s+", " "), strip(); the split/join
    implementation must equal it on every whitespace character there is and on mixed texts."""
    import random
    import re
    import sys
    import unicodedata

    def frozen(text: str) -> str:
        return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if re.fullmatch(r"\s", chr(c))]
    assert spaces == [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    rng = random.Random(20261203)
    alphabet = spaces + list("abcéé中\u200b﻿.,")  # zero-width space and BOM are not spaces
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert normalise_text(text) == frozen(text), repr(text)


def test_content_hash_ignores_whitespace_and_normal_form() -> None:
    a = content_hash("Caf\u00e9 au lait.\n\nSecond paragraph.")
    b = content_hash("  Cafe\u0301 au   lait. Second\tparagraph. ")
    assert a == b
    assert a == hashlib.sha256("Caf\u00e9 au lait. Second paragraph.".encode()).hexdigest()
    assert content_hash("Cafe au lait.") != a
