"""Faster, equivalent internals for trafilatura: the same results in less CPU.

Profiling ``extract_article`` on the corpus pages showed two costs that do not depend on what
trafilatura decides, only on how lxml is driven:

* **Element classes.** ``lxml.html`` picks each element's Python class with a lookup written in
  Python (``HtmlElementClassLookup.lookup``), called every time lxml hands an element to Python:
  about 4,000 calls per page. :func:`install` gives trafilatura's HTML parser the same mapping as a
  C-level lookup (``ElementNamespaceClassLookup``: ``form``, ``input``, ``label``, ``select`` and
  ``textarea`` keep their classes, everything else is ``HtmlElement``).
* **XPaths.** A third of the time was in ``prune_unwanted_nodes``: expressions such as
  ``.//*[self::div or self::p][re:test(@class, '...')]`` call back from libxml2 into Python's ``re``
  (EXSLT regular expressions) once per element and attribute, and libxml2 evaluates ``.//x`` far
  slower than ``descendant::x``. :func:`install` compiles trafilatura's expressions for pruning,
  content containers, title and author, read from its own ``xpaths`` module at run time, into plans
  that select the same elements in the same order:

  1. the candidates: with element names to look for (``.//*[self::div or self::p]``, ``.//header``),
     lxml's tag-filtered iteration in C; otherwise a callback-free ``descendant::*`` XPath that keeps
     only elements carrying an attribute the predicates can hold on;
  2. the predicates in Python on those candidates: the regular expressions compiled once, the tests
     of one attribute value merged into one, memoised by value (class and id values repeat).

  Only a small XPath subset is compiled: ``.//*``, ``//*``, ``.//name``, ``(path)[1]``, ``path[1]``
  and unions, with predicates made of ``or``, ``not(...)``, ``self::name``, ``not(.//name)``, ``@a``,
  ``@a='v'``, ``child='v'``, ``contains``, ``starts-with`` and ``re:test`` (with the ``i`` flag) over
  ``@a|@b`` or ``translate(@a, 'X', 'x')``. Anything else raises :class:`Unsupported` and that
  expression stays trafilatura's, so a trafilatura release with new expressions costs speed, never
  results. A union runs its first branch's plan and the others through libxml2, and falls back to
  the original expression when those find anything (merging in document order would cost more).

``tests/unit/test_trafilatura_speedups.py`` checks every compiled plan against libxml2's answer on
crafted edge cases (attribute order, missing attributes, ``translate``, positions, unions) and on the
bundled sample pages, and, where ../shared/corpus is present, on corpus pages together with
whole extractions with and without the speedups.

XPath semantics kept: a node-set used as a string is its first node in document order (for
``@id|@class`` the attribute written first in the tag); a missing attribute is the empty string;
``re:test`` is ``re.search`` with default flags, as in lxml's EXSLT implementation.

* **A copy the caller does not need.** ``bare_extraction`` copies a tree it is given (0.6 ms a page,
  3% of the extraction), so that the caller's tree survives. The pipeline's extractor reads the
  metadata first and has no use for its tree afterwards: inside :func:`handed_over`, that first copy
  is skipped (trafilatura's later copies, which keep its stages apart, are all made).

All are process-wide (any trafilatura call in the process gets them) and give identical results;
set ``NEWSWIRE_TRAFILATURA_SPEEDUPS=0`` to leave trafilatura untouched.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lxml import etree
from lxml import html as lxml_html

__all__ = [
    "CompiledXPath",
    "Unsupported",
    "compile_xpath",
    "handed_over",
    "html_class_lookup",
    "install",
    "installed",
    "uninstall",
]

log = logging.getLogger(__name__)

REGEXP_NS = "http://exslt.org/regular-expressions"

# the expression lists of trafilatura.xpaths: pruning, the main content's containers, title, author
TARGETS = (
    "BODY_XPATH",
    "TITLE_XPATHS",
    "AUTHOR_XPATHS",
    "RAW_TREE_PRUNE_XPATH",
    "REMOVE_COMMENTS_XPATH",
    "REMOVE_COMMENTS_AND_LISTS_XPATH",
    "OVERALL_DISCARD_XPATH",
    "TEASER_DISCARD_XPATH",
    "PRECISION_DISCARD_XPATH",
    "DISCARD_IMAGE_ELEMENTS",
    "COMMENTS_DISCARD_XPATH",
    "AUTHOR_DISCARD_XPATHS",
)

# element -> bool
Predicate = Callable[[Any], bool]

# memo of string tests per attribute value: class and id values repeat within a page and across the
# pages of a site, so most tests are a dict hit; cleared when it grows past this many values
MEMO_LIMIT = 50_000


class Unsupported(ValueError):
    """The expression is outside the compiled subset; it stays with libxml2."""


# -- tokens -------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        '[^']*'
      | \.//\*|\.//|//\*|//|::|\[|\]|\(|\)|,|\||=|@
      | [A-Za-z_][A-Za-z0-9_-]*(?::[A-Za-z_][A-Za-z0-9_-]*)?
      | [0-9]+
    )""",
    re.VERBOSE,
)


def _tokens(path: str) -> list[tuple[str, int, int]]:
    """(token, start, end) with offsets into ``path``, so a branch can be cut out of the source."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while path[pos:].strip():
        match = _TOKEN.match(path, pos)
        if match is None or match.end() == pos:
            raise Unsupported(f"cannot read {path[pos:pos + 20].strip()!r}")
        token = match.group().strip()
        out.append((token, match.end() - len(token), match.end()))
        pos = match.end()
    return out


# -- the parser ---------------------------------------------------------------------------------------


@dataclass
class _Node:
    """A parsed predicate: its Python test; ``exact``, the predicate as XPath text when libxml2 can
    evaluate it without calling back into Python (else None); ``need``, a cheap XPath condition that
    holds wherever the test can be true (``@class or @id``, ``self::div``), or None."""

    test: Predicate
    exact: str | None
    need: str | None
    # for a test of one attribute value (``@a``, ``@a|@b``, through translate or not): the attributes
    # and the check of the raw value, so that an ``or`` of such tests reads each value once
    names: tuple[str, ...] | None = None
    check: Callable[[str], bool] | None = None
    tags: frozenset[str] | None = None  # a test of the element's name alone (self::a or self::b)
    present: frozenset[str] | None = None  # a test of attributes' presence alone (@a or @b)


@dataclass
class _Plan:
    absolute: bool
    tag: str
    predicates: list[_Node]
    first_only: bool = False  # (path)[1]
    first_per_parent: bool = False  # path[1]


def _or(parts: list[str]) -> str:
    return " or ".join(parts)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, got {token!r}")
        self.pos += 1
        return token

    def string(self) -> str:
        token = self.take()
        if not (token.startswith("'") and token.endswith("'")):
            raise Unsupported(f"expected a string literal, got {token!r}")
        return token[1:-1]

    def name(self) -> str:
        token = self.take()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", token):
            raise Unsupported(f"expected a name, got {token!r}")
        return token

    # union := branch ('|' branch)*        branch := '(' path ')' '[' '1' ']' | path
    # path  := ('.//' | '//') ('*' | name) ('[' or_expr ']')*
    def union(self) -> tuple[_Plan, list[str]]:
        first = self.branch()
        rest: list[str] = []
        while self.peek() == "|":
            self.take("|")
            start = self.tokens[self.pos][1]
            self.branch()
            rest.append(self.source[start : self.tokens[self.pos - 1][2]])
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return first, rest

    def branch(self) -> _Plan:
        if self.peek() == "(":
            self.take("(")
            plan = self.path()
            self.take(")")
            self.take("[")
            self.take("1")
            self.take("]")
            plan.first_only = True
            return plan
        return self.path()

    def path(self) -> _Plan:
        axis = self.take()
        if axis in (".//*", "//*"):
            tag = "*"
        elif axis in (".//", "//"):
            tag = self.name()
        else:
            raise Unsupported(f"expected .//* or //*, got {axis!r}")
        plan = _Plan(absolute=axis.startswith("//"), tag=tag, predicates=[])
        while self.peek() == "[":
            if self.tokens[self.pos + 1][0] == "1":
                # .//x[...][1]: for each parent, its first child that matches (not the first overall)
                self.take("[")
                self.take("1")
                self.take("]")
                plan.first_per_parent = True
                break
            self.take("[")
            plan.predicates.append(self.or_expr())
            self.take("]")
        return plan

    def or_expr(self) -> _Node:
        nodes = [self.atom()]
        while self.peek() == "or":
            self.take("or")
            nodes.append(self.atom())
        return _any(nodes)

    def attrset(self) -> tuple[str, ...]:
        names = []
        self.take("@")
        names.append(self.name())
        while self.peek() == "|":
            self.take("|")
            self.take("@")
            names.append(self.name())
        return tuple(names)

    def value(self) -> tuple[tuple[str, ...], dict[int, int | None] | None]:
        """An attribute set used as a string, optionally through translate()."""
        if self.peek() == "translate":
            self.take("translate")
            self.take("(")
            names = self.attrset()
            self.take(",")
            source = self.string()
            self.take(",")
            target = self.string()
            self.take(")")
            table: dict[int, int | None] = {}
            for i, char in enumerate(source):  # XPath: the first occurrence of a character wins
                table.setdefault(ord(char), ord(target[i]) if i < len(target) else None)
            return names, table
        return self.attrset(), None

    def atom(self) -> _Node:
        start = self.tokens[self.pos][1] if self.pos < len(self.tokens) else 0
        node = self._atom()
        if node.exact == "":  # evaluated by libxml2 without callbacks: the atom as written
            node.exact = self.source[start : self.tokens[self.pos - 1][2]]
        return node

    def _atom(self) -> _Node:
        token = self.peek()
        if token == "self":
            self.take("self")
            self.take("::")
            tag = self.name()
            return _Node(lambda el: bool(el.tag == tag), "", f"self::{tag}", tags=frozenset({tag}))
        if token == "not":
            self.take("not")
            self.take("(")
            if self.peek() == ".//":
                self.take(".//")
                tag = self.name()
                self.take(")")
                return _Node(lambda el: next(el.iterdescendants(tag), None) is None, "", None)
            inner = self.or_expr()
            self.take(")")
            inner_test = inner.test
            return _Node(lambda el: not inner_test(el), None if inner.exact is None else f"not({inner.exact})", None)
        if token == "@":
            names = self.attrset()
            need = _or([f"@{n}" for n in names])
            if self.peek() == "=":
                self.take("=")
                literal = self.string()
                if literal and len(names) == 1:
                    return _value_test(names, lambda value: value == literal, "", need)
                return _Node(lambda el: any(el.get(n) == literal for n in names), "", need)
            return _Node(lambda el: any(el.get(n) is not None for n in names), "", need, present=frozenset(names))
        if token in ("contains", "starts-with", "re:test"):
            self.take()
            self.take("(")
            names, table = self.value()
            self.take(",")
            literal = self.string()
            flags = 0
            if token == "re:test" and self.peek() == ",":
                self.take(",")
                # lxml's EXSLT: "i" means ignore case, other flag letters are ignored
                flags = re.IGNORECASE if "i" in self.string() else 0
            self.take(")")
            return _string_test(token, names, table, literal, flags)
        if token is not None and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", token):
            # a child element compared with a string: true if one child's text is that string
            tag = self.name()
            self.take("=")
            literal = self.string()
            string_value = etree.XPath("string()")
            return _Node(lambda el: any(string_value(c) == literal for c in el.iterchildren(tag)), "", tag)
        raise Unsupported(f"unsupported {token!r}")


def _first(items: list[tuple[str, str]], names: tuple[str, ...] | frozenset[str]) -> str:
    """The string value of ``@a|@b``: of an element's attributes (``el.items()``, in document order)
    the first one named, '' when none is there."""
    for key, value in items:
        if key in names:
            return value
    return ""


def _string_test(
    function: str, names: tuple[str, ...], table: dict[int, int | None] | None, literal: str, flags: int
) -> _Node:
    match: Callable[[str], bool]
    if function == "re:test":
        search = re.compile(literal, flags).search
        match = lambda text: search(text) is not None
    elif function == "contains":
        match = lambda text: literal in text
    else:
        match = lambda text: text.startswith(literal)
    check = match if table is None else (lambda value: match(value.translate(table)))
    # a test that holds on the empty string holds on an element without the attributes: no condition
    need = None if check("") else _or([f"@{n}" for n in names])
    # contains() and starts-with() run in C (exact); only re:test calls back into Python
    return _value_test(names, check, "" if function != "re:test" else None, need)


def _value_test(names: tuple[str, ...], check: Callable[[str], bool], exact: str | None, need: str | None) -> _Node:
    """A test of the string value of ``names`` (a missing attribute is ''), memoised by value."""
    memo: dict[str, bool] = {}
    single = names[0] if len(names) == 1 else None

    def test(el: Any) -> bool:
        return _memoised(memo, check, (el.get(single) or "") if single is not None else _first(el.items(), names))

    return _Node(test, exact, need, names, check)


def _memoised(memo: dict[str, bool], check: Callable[[str], bool], value: str) -> bool:
    hit = memo.get(value)
    if hit is None:
        if len(memo) > MEMO_LIMIT:
            memo.clear()
        hit = memo[value] = check(value)
    return hit


def _any(nodes: list[_Node]) -> _Node:
    if len(nodes) == 1:
        return nodes[0]
    exacts = [n.exact for n in nodes]
    exact = None if any(x is None for x in exacts) else _or([x for x in exacts if x is not None])
    needs = [n.need for n in nodes]
    need = None if any(x is None for x in needs) else _or(list(dict.fromkeys(x for x in needs if x is not None)))
    # Tests of the same attribute value become one memoised test: one lookup per value, not per test.
    # This runs once per candidate element, so the element's own attributes (usually one to three)
    # are walked once, rather than looking up every name the tests read.
    groups: dict[tuple[str, ...], list[Callable[[str], bool]]] = {}
    exists: set[str] = set()
    others: list[Predicate] = []
    for node in nodes:
        if node.names is not None and node.check is not None:
            groups.setdefault(node.names, []).append(node.check)
        elif node.present is not None:
            exists.update(node.present)
        else:
            others.append(node.test)
    singles: dict[str, tuple[dict[str, bool], Callable[[str], bool]]] = {}
    multis: list[tuple[frozenset[str], dict[str, bool], Callable[[str], bool]]] = []
    without = False  # the answer for an element that has none of the attributes read
    for names, checks in groups.items():
        check = checks[0] if len(checks) == 1 else _any_check(tuple(checks))
        without = without or check("")
        if len(names) == 1:
            singles[names[0]] = ({}, check)
        else:
            multis.append((frozenset(names), {}, check))
    exist_names = frozenset(exists)
    other_tests = tuple(others)

    def test(el: Any) -> bool:
        items = el.items()  # in document order
        if without:
            # some test holds on a missing attribute: every name is looked at, present or not
            attrs = dict(items)
            if not exist_names.isdisjoint(attrs):
                return True
            if any(_memoised(m, c, attrs.get(n, "")) for n, (m, c) in singles.items()):
                return True
        elif items:
            # _memoised written out: this loop is the hot spot of the whole extraction
            for key, value in items:
                if key in exist_names:
                    return True
                entry = singles.get(key)
                if entry is not None:
                    memo, check = entry
                    hit = memo.get(value)
                    if hit is None:
                        if len(memo) > MEMO_LIMIT:
                            memo.clear()
                        hit = memo[value] = check(value)
                    if hit:
                        return True
        for names, memo, check in multis:
            if _memoised(memo, check, _first(items, names)):
                return True
        for other in other_tests:
            if other(el):
                return True
        return False

    tags = None
    if all(n.tags is not None for n in nodes):
        tags = frozenset().union(*(n.tags for n in nodes if n.tags is not None))
    return _Node(test, exact, need, tags=tags)


def _any_check(checks: tuple[Callable[[str], bool], ...]) -> Callable[[str], bool]:
    return lambda value: any(c(value) for c in checks)


# -- the compiled expression --------------------------------------------------------------------------


class CompiledXPath:
    """Called like an ``lxml.etree.XPath`` on an element; returns the same elements, in document order.

    A union (``A|B``) runs A's plan and B through libxml2: when B finds nothing, A's answer is the
    answer; otherwise the original expression answers (merging two lists in document order would cost
    more than it saves, and such pages are rare)."""

    def __init__(
        self,
        original: etree.XPath,
        prefilter: Callable[[Any], list[Any]],
        tests: Sequence[Predicate],
        plan: _Plan,
        others: etree.XPath | None,
    ) -> None:
        self.original = original
        self.path: str = original.path
        self._prefilter = prefilter
        self._tests = tuple(tests)
        self._first_only = plan.first_only
        self._first_per_parent = plan.first_per_parent
        self._others = others

    def __call__(self, tree: Any) -> list[Any]:
        if self._others is not None and self._others(tree):
            return list(self.original(tree))
        candidates = self._prefilter(tree)
        for test in self._tests:
            candidates = [el for el in candidates if test(el)]
        if self._first_per_parent:
            parents: set[Any] = set()
            firsts = []
            for el in candidates:
                parent = el.getparent()
                if parent not in parents:
                    parents.add(parent)
                    firsts.append(el)
            candidates = firsts
        return candidates[:1] if self._first_only else candidates

    def __repr__(self) -> str:
        return f"CompiledXPath({' '.join(self.path.split())[:60]!r}...)"


def compile_xpath(original: etree.XPath) -> CompiledXPath:
    """The compiled plan for ``original``, or :class:`Unsupported`."""
    plan, others = _Parser(original.path).union()
    union = etree.XPath(" | ".join(others), namespaces={"re": REGEXP_NS}) if others else None
    predicates = plan.predicates
    # With element names to look for, lxml's tag-filtered iteration (in C) is the cheapest way to the
    # candidates and every predicate runs in Python; without, libxml2 narrows all elements down to
    # those the predicates' conditions allow.
    if plan.tag != "*" or (predicates and predicates[0].tags is not None):
        if plan.tag != "*":
            tags = [plan.tag]
            rest = predicates
        else:
            tags = sorted(predicates[0].tags or ())
            rest = predicates[1:]
        if plan.absolute:
            prefilter: Callable[[Any], list[Any]] = lambda tree: list(tree.getroottree().getroot().iter(*tags))
        else:
            prefilter = lambda tree: list(tree.iterdescendants(*tags))
        return CompiledXPath(original, prefilter, [p.test for p in rest], plan, union)
    # descendant::x = .//x for predicates without position(), and faster in libxml2
    step = ("/descendant::" if plan.absolute else "descendant::") + plan.tag
    tests = []
    for predicate in predicates:
        if predicate.exact is not None:
            step += f"[{predicate.exact}]"
        else:
            if predicate.need is not None:
                step += f"[{predicate.need}]"
            tests.append(predicate.test)
    return CompiledXPath(original, etree.XPath(step, namespaces={"re": REGEXP_NS}), tests, plan, union)


# -- handing a tree over ------------------------------------------------------------------------------

_handed = threading.local()


def _copy_unless_handed_over(obj: Any) -> Any:
    """trafilatura.core's ``copy``: the tree handed over is not copied, once (bare_extraction's copy
    of its input comes first); every other copy is made."""
    if obj is not None and getattr(_handed, "tree", None) is obj:
        _handed.tree = None
        return obj
    return copy.copy(obj)


@contextmanager
def handed_over(tree: Any) -> Iterator[None]:
    """For a caller that will not use ``tree`` again: a ``bare_extraction(tree)`` inside this block
    works on ``tree`` itself (and prunes it) instead of a copy. Without the speedups installed, a
    no-op."""
    _handed.tree = tree
    try:
        yield
    finally:
        _handed.tree = None


# -- installing into trafilatura ----------------------------------------------------------------------

_installed: list[str] = []


def _expressions(module: Any) -> Iterator[tuple[str, int, Any]]:
    for name in TARGETS:
        for index, expression in enumerate(getattr(module, name, None) or ()):
            yield name, index, expression


def html_class_lookup() -> etree.ElementNamespaceClassLookup:
    """``lxml.html``'s element classes, chosen in C."""
    fallback = etree.ElementDefaultClassLookup(
        element=lxml_html.HtmlElement,
        comment=lxml_html.HtmlComment,
        pi=lxml_html.HtmlProcessingInstruction,
        entity=lxml_html.HtmlEntity,
    )
    lookup = etree.ElementNamespaceClassLookup(fallback)
    by_tag = lookup.get_namespace(None)
    # the HTML parser lower-cases tag names, so the Python lookup's name.lower() is a no-op here
    for tag, cls in lxml_html.HtmlElementClassLookup._default_element_classes.items():
        by_tag[tag] = cls
    return lookup


def install() -> list[str]:
    """Give trafilatura's parser the C-level class lookup and put compiled plans into its expression
    lists, in place (the modules that imported a list share it). Idempotent; returns what was
    changed (``lookup``, ``NAME[i]`` of every expression replaced)."""
    if _installed or os.environ.get("NEWSWIRE_TRAFILATURA_SPEEDUPS", "1").strip().lower() in ("0", "false", "no", "off"):
        return list(_installed)
    from trafilatura import core, utils, xpaths

    parser = getattr(utils, "HTML_PARSER", None)
    if isinstance(parser, lxml_html.HTMLParser):
        parser.set_element_class_lookup(html_class_lookup())
        _installed.append("lookup")
    if getattr(core, "copy", None) is copy.copy:
        core.copy = _copy_unless_handed_over  # type: ignore[attr-defined,assignment]
        _installed.append("core.copy")

    for name, index, expression in _expressions(xpaths):
        if isinstance(expression, CompiledXPath) or not isinstance(expression, etree.XPath):
            continue
        try:
            compiled = compile_xpath(expression)
        except Unsupported as exc:
            log.debug("xpath %s[%d] stays with libxml2: %s", name, index, exc)
            continue
        getattr(xpaths, name)[index] = compiled
        _installed.append(f"{name}[{index}]")
    log.debug("trafilatura speedups: %s", ", ".join(_installed))
    return list(_installed)


def installed() -> list[str]:
    return list(_installed)


def uninstall() -> None:
    """Stock trafilatura again: its own XPath objects and lxml.html's Python class lookup (for
    comparisons: the tests, and the benchmarks' bare-trafilatura baseline)."""
    from trafilatura import core, utils, xpaths

    for name, index, expression in _expressions(xpaths):
        if isinstance(expression, CompiledXPath):
            getattr(xpaths, name)[index] = expression.original
    if getattr(core, "copy", None) is _copy_unless_handed_over:
        core.copy = copy.copy  # type: ignore[attr-defined]
    parser = getattr(utils, "HTML_PARSER", None)
    if isinstance(parser, lxml_html.HTMLParser):
        parser.set_element_class_lookup(lxml_html.HtmlElementClassLookup())
    _installed.clear()
