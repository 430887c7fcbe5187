"""The trafilatura speedups select exactly what libxml2 selects, and change no extraction.

Each compiled plan is compared with the original XPath object it replaces, on crafted trees that hit
the XPath corner cases (attribute order in ``@id|@class``, missing attributes, ``translate``, nested
matches, ``not(.//h1)``, comments and processing instructions), on the bundled sample pages at two
stages of trafilatura's processing (raw, and cleaned + converted), and on a sample of the corpus
pages when ../shared/corpus is there.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from copy import copy
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from lxml import html as lxml_html
from trafilatura import xpaths
from trafilatura.htmlprocessing import convert_tags, tree_cleaning
from trafilatura.settings import Extractor
from trafilatura.utils import load_html

from newswire.processors import trafilatura_speedups as speedups
from newswire.processors.extract import decode_html, extract_article
from tests.support.corpus_web import corpus_dir

SAMPLE = Path(__file__).resolve().parents[2] / "demo" / "sample" / "articles"
RE = {"re": speedups.REGEXP_NS}


def originals() -> Iterator[tuple[str, etree.XPath]]:
    """Every expression of the targeted lists, as libxml2 evaluates it (the original object)."""
    for name, index, expression in speedups._expressions(xpaths):
        original = expression.original if isinstance(expression, speedups.CompiledXPath) else expression
        yield f"{name}[{index}]", original


def compiled_pairs() -> list[tuple[str, etree.XPath, speedups.CompiledXPath]]:
    pairs = []
    for label, original in originals():
        try:
            pairs.append((label, original, speedups.compile_xpath(original)))
        except speedups.Unsupported:
            continue
    return pairs


def same(original: Any, compiled: Any, tree: Any) -> None:
    want = original(tree)
    got = compiled(tree)
    assert got == want, (original.path.strip()[:80], [e.tag for e in want], [e.tag for e in got])


def stages(markup: str) -> list[Any]:
    tree = load_html(markup)
    assert tree is not None
    options = Extractor()
    return [tree, convert_tags(tree_cleaning(copy(tree), options), options)]


CRAFTED = """<html><head><title>t</title></head><body>
<div class="share-bar" id="main">a</div>
<div id="main" class="share-bar">b</div>
<div id="social-x">c</div><div class="">d</div><div>e</div>
<section role="Navigation">f</section><span role="NAVIGATION">g</span>
<p data-lp-replacement-content="">h</p>
<div data-component="MostPopularStories-1">i</div>
<div class="Teaser big">j</div><div id="TEASER">k</div>
<div style="display: none">l</div><div style="color:red; border: 1px">m</div>
<div aria-hidden="true"><div class="reply-box">n</div></div>
<div id="reply-1" class="x">o</div><div class="reply-1" id="x">p</div>
<div class="comments-title">q</div><ul id="comments"><li>r</li></ul><ol class="comment-list"><li>s</li></ol>
<div id="commentary">t</div><section id="disqus_thread">u</section>
<div class="infinite-scroll"><h1>v</h1></div><div class="infinite-scroll"><p>w</p></div>
<div class="mvp-post-add-box"><h1>x</h1></div>
<aside class="elementor-share-buttons">y</aside>
<div class="page-bottom">z</div><div class="link">aa</div><div class="permalink">bb</div>
<p class="image-caption">cc</p><span id="caption1">dd</span>
<a class="comments">ee</a><div class="meta-date">ff</div><div data-component="Figure">gg</div>
<!-- a comment --><?pi here?>
<div class=" ad ">hh</div><div class="x-ad-y">ii</div><div class="nav main">jj</div>
<header>kk</header><div id="respond">ll</div><cite>mm</cite><time>nn</time><figure>oo</figure>
</body></html>"""


def test_most_targeted_expressions_compile() -> None:
    pairs = compiled_pairs()
    # every expression of the targeted lists fits the subset (a new trafilatura may add some that do
    # not: they stay with libxml2, and this test says so)
    assert {label for label, _ in originals()} == {label for label, _, _ in pairs}


@pytest.mark.parametrize("stage", [0, 1])
def test_crafted_corner_cases(stage: int) -> None:
    tree = stages(CRAFTED)[stage]
    for _label, original, compiled in compiled_pairs():
        same(original, compiled, tree)


def test_crafted_tree_exercises_the_expressions() -> None:
    """The crafted page is not vacuous: the pruning expressions select something on it."""
    tree = stages(CRAFTED)[0]
    pruning = [(label, original) for label, original, _ in compiled_pairs() if "DISCARD" in label or "PRUNE" in label
               or "REMOVE" in label]
    misses = [label for label, original in pruning if not original(tree)]
    assert not misses


@pytest.mark.parametrize(
    ("path", "markup", "expected"),
    [
        # @id|@class as a string is the attribute written first in the tag
        (".//*[re:test(@id|@class, '^x$')]", '<div><p class="x" id="y">1</p><p id="y" class="x">2</p></div>', ["1"]),
        (".//*[starts-with(@class|@id, 'y')]", '<div><p class="x" id="y">1</p><p id="y" class="x">2</p></div>', ["2"]),
        # a missing attribute is '': a pattern that matches '' selects every element
        (".//*[self::p][re:test(@class, '^$')]", '<div><p>1</p><p class="a">2</p></div>', ["1"]),
        (".//*[self::p][not(re:test(@class, 'a'))]", '<div><p>1</p><p class="a">2</p></div>', ["1"]),
        # translate: A -> a, B (no counterpart) deleted
        (".//*[self::p or self::span][contains(translate(@id, 'AB', 'a'), 'ac')]",
         '<div><p id="ABC">1</p><span id="aBc">2</span><p id="Ac">3</p></div>', ["2", "3"]),
        # path[1] is the first match among each parent's children; (path)[1] the first overall
        (".//*[self::p][@class][1]", '<div><p class="a">1</p><p class="b">2</p><section><p class="c">3</p></section></div>',
         ["1", "3"]),
        ("(.//*[self::p][@class])[1]", '<div><p>0</p><p class="a">1</p><section><p class="c">3</p></section></div>', ["1"]),
        # a union: the second branch's hits come in document order with the first's
        (".//*[self::p][re:test(@class, 'a')]|.//span", '<div><span>0</span><p class="a">1</p></div>', ["0", "1"]),
        (".//*[self::p][re:test(@class, 'a')]|.//span", '<div><p class="a">1</p></div>', ["1"]),
        # a child element compared with a string; re:test's "i" flag
        (".//*[rel='me' or re:test(@class, 'X', 'i')]", '<div><p><rel>me</rel>1</p><p class="x">2</p><p>3</p></div>',
         [None, "2"]),
        (".//*[self::div][not(.//h1)]", "<section><div>1<h1>t</h1></div><div>2</div></section>", ["2"]),
        (".//*[@data-x='']", '<div><p data-x="">1</p><p data-x="y">2</p><p>3</p></div>', ["1"]),
        (".//*[@data-x]", '<div><p data-x="">1</p><p data-x="y">2</p><p>3</p></div>', ["1", "2"]),
        # a presence test beside a value test that holds on a missing attribute
        (".//*[self::p][@data-x or re:test(@class, '^$')]",
         '<div><p data-x="1" class="a">1</p><p class="a">2</p><p>3</p></div>', ["1", "3"]),
    ],
)
def test_semantics_match_libxml2(path: str, markup: str, expected: list[str]) -> None:
    original = etree.XPath(path, namespaces=RE)
    compiled = speedups.compile_xpath(original)
    tree = lxml_html.fromstring(f"<html><body>{markup}</body></html>")
    assert [e.text for e in original(tree)] == expected
    same(original, compiled, tree)


@pytest.mark.parametrize(
    "path",
    [".//*[position() = 1]", ".//*[@a and @b]", ".//*[contains(text(), 'x')]", ".//p/span", "//*[2]",
     ".//*[re:test(@class, 'a', 'i', 'x')]", "count(.//p)"],
)
def test_outside_the_subset_stays_with_libxml2(path: str) -> None:
    with pytest.raises(speedups.Unsupported):
        speedups.compile_xpath(etree.XPath(path, namespaces=RE))


@pytest.mark.parametrize("page", sorted(SAMPLE.glob("*.html")), ids=lambda p: p.stem)
def test_sample_pages(page: Path) -> None:
    for tree in stages(page.read_text("utf-8")):
        for _label, original, compiled in compiled_pairs():
            same(original, compiled, tree)


def test_class_lookup_gives_lxml_html_classes() -> None:
    parser = lxml_html.HTMLParser()
    parser.set_element_class_lookup(speedups.html_class_lookup())
    markup = "<html><body><form><input name=a><select><option>x</select><textarea></textarea>" \
             "<label>l</label></form><p>t</p><!-- c --></body></html>"
    fast = lxml_html.fromstring(markup, parser=parser)
    slow = lxml_html.fromstring(markup)
    assert [type(e) for e in fast.iter()] == [type(e) for e in slow.iter()]
    assert isinstance(fast.find(".//form"), lxml_html.FormElement)
    assert isinstance(fast.find(".//p"), lxml_html.HtmlElement)


def test_installed_in_this_process() -> None:
    """extract.py installs the speedups on import: trafilatura's lists now hold the compiled plans."""
    done = speedups.install()
    assert "lookup" in done
    assert any(isinstance(e, speedups.CompiledXPath) for e in xpaths.OVERALL_DISCARD_XPATH)


@pytest.mark.parametrize("page", sorted(SAMPLE.glob("*.html")), ids=lambda p: p.stem)
def test_handed_over_tree_is_not_copied_and_extracts_the_same(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import copy as copy_module

    import trafilatura

    copied: list[Any] = []
    real_copy = copy_module.copy

    def counting_copy(obj: Any) -> Any:
        copied.append(obj)
        return real_copy(obj)

    monkeypatch.setattr(copy_module, "copy", counting_copy)  # what the installed hook calls
    markup = page.read_text("utf-8")
    speedups.install()
    kept = load_html(markup)
    stock = trafilatura.bare_extraction(kept, url="http://example.test/a", with_metadata=False)
    stock_copies = len(copied)
    assert sum(obj is kept for obj in copied) == 1  # bare_extraction's copy of its input
    copied.clear()
    handed = load_html(markup)
    with speedups.handed_over(handed):
        fast = trafilatura.bare_extraction(handed, url="http://example.test/a", with_metadata=False)
    assert len(copied) == stock_copies - 1  # that one is skipped ...
    assert stock_copies >= 3 and sum(obj is handed for obj in copied) >= 2  # ... the stages' are made
    assert fast.text == stock.text and fast.title == stock.title
    copied.clear()
    again = load_html(markup)  # outside the block, trafilatura copies its input again
    trafilatura.bare_extraction(again, url="http://example.test/a", with_metadata=False)
    assert len(copied) == stock_copies and sum(obj is again for obj in copied) == 1


def test_handed_over_is_undone_by_uninstall() -> None:
    from trafilatura import core

    speedups.install()
    assert "core.copy" in speedups.installed()
    speedups.uninstall()
    try:
        assert core.copy is copy
    finally:
        speedups.install()
    assert core.copy is not copy


def _corpus_pages(step: int) -> list[tuple[str, bytes, str]]:
    root = corpus_dir()
    if root is None:
        pytest.skip("corpus not found (../shared/corpus or $NEWSWIRE_CORPUS): corpus equivalence not run")
    folder = root / "articles"
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text("utf-8").splitlines() if line.strip()]
    pages = []
    for row in rows[::step]:
        pages.append((row["id"], gzip.decompress((folder / row["file"]).read_bytes()), row.get("url") or ""))
    return pages


@pytest.mark.corpus
def test_corpus_pages_select_the_same() -> None:
    for _id, body, _url in _corpus_pages(step=10):
        tree = load_html(decode_html(body))
        if tree is None:
            continue
        for stage_tree in (tree, convert_tags(tree_cleaning(copy(tree), Extractor()), Extractor())):
            for _label, original, compiled in compiled_pairs():
                same(original, compiled, stage_tree)


@pytest.mark.corpus
def test_corpus_extractions_unchanged() -> None:
    """extract_article with the speedups equals extract_article with trafilatura's own objects."""
    pages = _corpus_pages(step=25)
    fast = [extract_article(body, url or f"http://pages.test/{pid}.html") for pid, body, url in pages]
    speedups.uninstall()
    try:
        assert not speedups.installed()
        assert not any(isinstance(e, speedups.CompiledXPath) for e in xpaths.OVERALL_DISCARD_XPATH)
        slow = [extract_article(body, url or f"http://pages.test/{pid}.html") for pid, body, url in pages]
    finally:
        speedups.install()
    assert len(pages) > 40
    assert fast == slow
