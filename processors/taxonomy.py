"""Loading and validating a topic taxonomy (YAML), with errors that name the file and line.

A taxonomy is one YAML file or a directory of them (``*.yaml``/``*.yml``, read in name order; hidden
files are skipped). A file
holds one topic (a mapping with ``slug``) or several (a mapping with ``topics: [...]``). The format is
documented in ``docs/tagging.md``; the shipped taxonomy lives in ``newswire/taxonomy/``.

Validation walks yaml's composed node tree rather than the loaded Python values, because only the nodes
keep ``start_mark`` (file line) for every key and list item.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Combiner",
    "Taxonomy",
    "TaxonomyError",
    "Term",
    "Topic",
    "load_taxonomy",
    "load_taxonomy_text",
    "normalise_text",
]

log = logging.getLogger(__name__)

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG = 200  # a topic stream is {prefix}.topic.<slug>: room for a prefix in Kafka's 249
# A number as YAML 1.2 writes it; PyYAML (YAML 1.1) leaves "1e3" and "1e400" as strings.
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# Deeper than any taxonomy needs; far from where the YAML composer's recursion would overflow the stack.
_MAX_DEPTH = 64
# Values a file may expand to through aliases: the shipped taxonomy has ~3,500; a user's of 100,000 terms
# fits; a "billion laughs" does not.
_MAX_NODES = 2_000_000
DEFAULT_THRESHOLD = 0.5
DEFAULT_TITLE_WEIGHT = 2.0
DEFAULT_LEAD_WEIGHT = 1.5
DEFAULT_DAMPEN_FACTOR = 0.5

# Characters mapped one-to-one so that offsets in the normalised text stay aligned with the original.
_FOLD = (
    ("\u2019", "'"),
    ("\u2018", "'"),
    ("\u02bc", "'"),
    ("\u00b4", "'"),
    ("\u2010", "-"),
    ("\u2011", "-"),
    ("\u00a0", " "),
    ("\u202f", " "),
    ("\u2009", " "),
    ("\u3000", " "),
)


def normalise_text(text: str) -> str:
    """NFC plus one-to-one folding of apostrophe, hyphen and space variants (case is kept)."""
    text = unicodedata.normalize("NFC", text)
    if text.isascii():
        return text
    # str.replace guarded by a C-speed "in" test is ~20x faster than str.translate with a dict table.
    for src, dst in _FOLD:
        if src in text:
            text = text.replace(src, dst)
    return text


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class Term:
    """One weighted term of a topic: several surface forms that count as the same evidence.

    ``forms`` are normalised lower-case strings; a trailing ``*`` makes a prefix stem (the match may go
    on with more letters, for inflected languages). ``case_forms`` holds the original spelling when
    ``case_sensitive`` (checked against the text as written). ``requires``/``unless`` are cue forms
    that must / must not occur anywhere in the item for the term to count. ``context`` terms only
    count when some non-context term of the same topic matched.
    """

    label: str
    forms: tuple[str, ...]
    weight: float
    requires: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    case_sensitive: bool = False
    context: bool = False
    window: int | None = None
    source: str = ""


# Features a topic's learned combiner may weigh (see processors/tagging.py, docs/tagging.md): fixed
# names, plus "term:<label>" / "loose:<label>" per term of the topic, "other:<slug>" per other topic and
# "bow:<word>" per context word (a word of 3+ letters, or a CJK character bigram, of the item's title and
# first characters: processors.tagging.bow_tokens).
COMBINER_FEATURES = (
    "evidence",
    "title",
    "terms",
    "short",
    "words",
    "damp",
    "listed",
    "filtered",
    "short_evidence",
    "hits",
    "first",
    "spread",
    "cjk",
)
COMBINER_PREFIXES = ("term:", "loose:", "other:", "bow:")


@dataclass(frozen=True)
class Combiner:
    """A learned logistic combiner of a topic's keyword evidence (``model:`` in the topic's YAML).

    The score is ``sigmoid(bias + sum(weight * feature))``; the bias already places the topic's
    ``threshold`` at the cut-off chosen in cross-validation, so "tagged" still means
    score >= threshold.
    """

    bias: float
    weights: tuple[tuple[str, float], ...]
    source: str = ""
    # ``file:line`` of each weight, in the order of ``weights`` (for messages; not part of the content)
    weight_sources: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str
    terms: tuple[Term, ...]
    exclude: tuple[str, ...] = ()
    dampen: tuple[str, ...] = ()
    dampen_factor: float = DEFAULT_DAMPEN_FACTOR
    threshold: float = DEFAULT_THRESHOLD
    title_weight: float = DEFAULT_TITLE_WEIGHT
    lead_weight: float = DEFAULT_LEAD_WEIGHT
    model: Combiner | None = None
    source: str = ""


@dataclass(frozen=True)
class Taxonomy:
    name: str
    version: str
    topics: tuple[Topic, ...]
    # what loading set aside without failing (a learned model that no longer fits its topics), one
    # ``file:line: ...`` line each; also logged as warnings
    warnings: tuple[str, ...] = ()

    @property
    def slugs(self) -> list[str]:
        return [t.slug for t in self.topics]

    def topic(self, slug: str) -> Topic:
        for t in self.topics:
            if t.slug == slug:
                return t
        raise KeyError(slug)

    def digest(self, slugs: Iterable[str], *, extra: str = "") -> str | None:
        """A digest (12 hex digits) of the named topics' content, as the version hash sees it, and of
        ``extra``; None when one of them is not in this taxonomy. Names what a scorer trained on some
        topics depends on, so that it survives edits of the others."""
        wanted = sorted(set(slugs))
        by_slug = {t.slug: t for t in self.topics}
        if any(s not in by_slug for s in wanted):
            return None
        content = json.dumps([[_canon(by_slug[s]) for s in wanted], extra], sort_keys=True)
        return hashlib.sha256(content.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- loading


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load the shipped taxonomy (``None``) or a user's YAML file or directory of YAML files."""
    if path is None:
        root = resources.files("newswire").joinpath("taxonomy")
        docs = sorted(
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in root.iterdir()
            if entry.name.endswith((".yaml", ".yml"))
        )
        return _build("builtin", [(f"newswire/taxonomy/{name}", text) for name, text in docs])
    p = Path(path)
    if p.is_dir():
        # hidden files are not topics: macOS writes "._china.yaml" beside a copied file, editors ".x.yaml"
        files = sorted(
            f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and not f.name.startswith(".") and f.is_file()
        )
        if not files:
            raise TaxonomyError(f"{p}: no .yaml or .yml files in this directory")
        name = p.name or "taxonomy"
    elif p.is_file():
        files = [p]
        name = p.stem
    else:
        raise TaxonomyError(f"{p}: no such file or directory")
    docs_: list[tuple[str, str]] = []
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            raise TaxonomyError(f"{f}: cannot read ({exc.strerror})") from None
        try:
            docs_.append((str(f), data.decode("utf-8")))
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise TaxonomyError(
                f"{f}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason}); "
                "a taxonomy file is YAML saved as UTF-8"
            ) from None
    return _build(name, docs_)


def load_taxonomy_text(text: str, *, filename: str = "<string>", name: str = "inline") -> Taxonomy:
    """Load a taxonomy from YAML text (tests, embedding)."""
    return _build(name, [(filename, text)])


def _build(name: str, docs: list[tuple[str, str]]) -> Taxonomy:
    topics: list[Topic] = []
    seen: dict[str, str] = {}
    for filename, text in docs:
        for topic in _parse_file(filename, text):
            if topic.slug in seen:
                raise TaxonomyError(
                    f"{topic.source}: topic slug {topic.slug!r} is already defined at {seen[topic.slug]}"
                )
            seen[topic.slug] = topic.source
            topics.append(topic)
    if not topics:
        raise TaxonomyError(f"{docs[0][0] if docs else name}: the taxonomy defines no topics")
    warnings: list[str] = []
    for index, topic in enumerate(topics):
        problem = _unfit_model(topic, set(seen))
        if problem is not None:
            # A learned model is fitted to the terms and topics it names: one that names a term or a
            # topic no longer there (a copy kept in part, a term removed) cannot be applied, but the
            # topic's terms still can. The topic falls back to the plain score rather than failing.
            warnings.append(problem)
            log.warning("%s", problem)
            topics[index] = replace(topic, model=None)
    digest = hashlib.sha256(json.dumps([_canon(t) for t in topics], sort_keys=True).encode()).hexdigest()
    return Taxonomy(
        name=name, version=f"{name}-{digest[:12]}", topics=tuple(topics), warnings=tuple(warnings)
    )


def _unfit_model(topic: Topic, slugs: set[str]) -> str | None:
    """Why the topic's learned model cannot be used with this taxonomy (one line, naming the file and
    line of the first feature that does not fit), or None when it can (or there is none)."""
    model = topic.model
    if model is None:
        return None
    labels = {t.label for t in topic.terms}
    unfit: list[tuple[str, str, str]] = []  # (where, why, feature)
    for i, (feature, _) in enumerate(model.weights):
        where = model.weight_sources[i] if i < len(model.weight_sources) else model.source
        prefix, _, rest = feature.partition(":")
        if prefix == "other" and rest not in slugs:
            unfit.append((where, f"model feature {feature!r} names no topic of this taxonomy", feature))
        elif prefix in ("term", "loose") and rest not in labels:
            unfit.append(
                (where, f"model feature {feature!r} names no term label of topic {topic.slug!r}", feature)
            )
    if not unfit:
        return None
    where, why, feature = unfit[0]
    more = f" (and {len(unfit) - 1} more such features)" if len(unfit) > 1 else ""
    prefix, _, rest = feature.partition(":")
    # A term's label is its first form unless it says otherwise: changing that form renames the term.
    relabel = (
        f"if you changed the first form of a term, give that term `label: {rest}`; otherwise "
        if prefix in ("term", "loose") else ""
    )
    return (
        f"{where}: {why}{more}; topic {topic.slug!r} falls back to the plain score r/(r+6) without "
        f"its learned model ({relabel}retrain the model with `python eval/train_combiner.py --write`, "
        "or delete its 'model:' block)"
    )


def _canon(topic: Topic) -> dict[str, Any]:
    """The content that decides tagging (no file names/lines), for the version hash."""
    return {
        "slug": topic.slug,
        "threshold": topic.threshold,
        "title_weight": topic.title_weight,
        "lead_weight": topic.lead_weight,
        "exclude": sorted(topic.exclude),
        "dampen": sorted(topic.dampen),
        "dampen_factor": topic.dampen_factor,
        "model": None if topic.model is None else [topic.model.bias, sorted(topic.model.weights)],
        "terms": [
            [
                t.label,
                list(t.forms),
                t.weight,
                sorted(t.requires),
                sorted(t.unless),
                t.case_sensitive,
                t.context,
                t.window,
            ]
            for t in topic.terms
        ],
    }


# --------------------------------------------------------------------------- validation


def _where(filename: str, node: yaml.Node) -> str:
    return f"{filename}:{node.start_mark.line + 1}"


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops at a nesting depth no taxonomy needs, with the line where it got there,
    before the composer's recursion overflows Python's stack."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeep(event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _yaml_hint(exc: yaml.MarkedYAMLError) -> str:
    """What PyYAML's wording means for a taxonomy file, for the mistakes people make."""
    problem = str(exc.problem or "")
    if "another document" in problem:
        return " (a second '---' document: one topic per file, or several in a list under 'topics:')"
    if "mapping values are not allowed" in problem:
        return " (a ': ' inside a value: put the value in quotes; otherwise check this line's indentation)"
    if "<block end>" in problem:
        return " (check this line's indentation against the lines above it)"
    return ""


_CLoader: type | None = getattr(yaml, "CSafeLoader", None)  # libyaml, when PyYAML was built with it


@dataclass(frozen=True)
class _Shape:
    depth: int  # of the tree the aliases expand to
    size: int  # nodes in that tree
    cycle: yaml.Node | None  # a node that contains an alias to itself


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _shape(root: yaml.Node) -> _Shape:
    """The depth and size of the tree a node graph expands to, and any cycle in it. An alias makes the
    composed tree a graph: nested aliases (a "billion laughs") expand exponentially and an alias inside
    its own anchor (``a: &a [*a]``) never ends, so a plain walk would hang. Each node is measured once
    (memoised), iteratively: no recursion to overflow."""
    done: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()  # nodes whose children are being measured: the ancestors of the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, measured = stack.pop()
        key = id(node)
        if measured:
            kids = [done[id(child)] for child in _children(node)]
            done[key] = (1 + max((d for d, _ in kids), default=0), 1 + sum(n for _, n in kids))
            on_path.discard(key)
        elif key in on_path:
            return _Shape(0, 0, node)
        elif key not in done:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    depth, size = done[id(root)]
    return _Shape(depth, size, None)


def _compose_fast(text: str) -> yaml.Node | None | bool:
    """The node tree by libyaml (the shipped taxonomy loads in ~0.04 s instead of ~0.21 s with the
    pure-Python composer), or False when the file must take the careful path:
    no libyaml, a character the Python reader refuses, or any YAML error. The careful path then gives
    the same tree, or the one-line error with its wording and line."""
    if _CLoader is None or yaml.reader.Reader.NON_PRINTABLE.search(text):
        return False
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=_CLoader)
    except yaml.YAMLError:
        return False
    return node


def _compose(filename: str, text: str) -> yaml.Node | None:
    """The YAML node tree, or a TaxonomyError of one line with the line of the mistake."""
    fast = _compose_fast(text)
    root = fast if isinstance(fast, yaml.Node) else None
    shape = _shape(root) if root is not None else None
    if fast is False or (shape is not None and shape.cycle is None and shape.depth > _MAX_DEPTH):
        # the careful composer names the line of the mistake (or, when aliases made it deep, allows it)
        root = _compose_careful(filename, text)
        shape = _shape(root) if root is not None else None
    if root is None or shape is None:
        return None
    if shape.cycle is not None:
        raise TaxonomyError(
            f"{_where(filename, shape.cycle)}: YAML error: an alias inside the value its anchor names "
            "(it would contain itself)"
        )
    if shape.size > _MAX_NODES:
        raise TaxonomyError(
            f"{filename}:1: YAML error: aliases expand to more than {_MAX_NODES:,} values "
            "(aliases of aliases?); write the lists out"
        )
    return root


def _compose_careful(filename: str, text: str) -> yaml.Node | None:
    """The pure-Python composer, which names the line of every mistake."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks every character first (yaml.reader.ReaderError)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = _one_line(exc.problem or exc.context or "not valid YAML")
        if exc.problem and exc.context and str(exc.context).startswith("expected"):
            problem = _one_line(f"{exc.context} {exc.problem}")  # "expected a single document ... but found"
        raise TaxonomyError(f"{filename}:{line}: YAML syntax error: {problem}{_yaml_hint(exc)}") from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a control character: NUL, ESC, form feed...). The reader
        # gives its offset in the text; the line is counted from there.
        position = max(0, min(int(exc.position), len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        if isinstance(exc.character, int):
            kind = "control character" if unicodedata.category(chr(exc.character)) == "Cc" else "character"
            what = f"{kind} U+{exc.character:04X}"
        else:
            what = "a character"
        raise TaxonomyError(
            f"{filename}:{line}: YAML error: {what} (column {column}) is not allowed in YAML; remove it"
        ) from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{filename}:1: YAML error: {_one_line(exc)}") from None
    except _TooDeep as exc:
        raise TaxonomyError(
            f"{filename}:{exc.line}: YAML error: nested more than {_MAX_DEPTH} levels deep "
            "(a topic needs a few; an unclosed '[' or '{' repeated?)"
        ) from None
    except RecursionError:
        raise TaxonomyError(f"{filename}:1: YAML error: nested too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()


def _parse_file(filename: str, text: str) -> list[Topic]:
    root = _compose(filename, text)
    if root is None:
        raise TaxonomyError(f"{filename}:1: empty file (expected a topic mapping with 'slug')")
    if not isinstance(root, yaml.MappingNode):
        raise TaxonomyError(f"{_where(filename, root)}: expected a mapping with 'slug' or 'topics'")
    top = _mapping(filename, root)
    if "topics" in top:
        extra = set(top) - {"topics"}
        if extra:
            key = min(extra)
            raise TaxonomyError(f"{_where(filename, top[key][0])}: unknown key {key!r} beside 'topics'")
        seq = top["topics"][1]
        if not isinstance(seq, yaml.SequenceNode) or not seq.value:
            raise TaxonomyError(f"{_where(filename, seq)}: 'topics' must be a non-empty list of topics")
        return [_parse_topic(filename, item) for item in seq.value]
    return [_parse_topic(filename, root)]


def _mapping(filename: str, node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise TaxonomyError(f"{_where(filename, node)}: expected a mapping")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise TaxonomyError(f"{_where(filename, key_node)}: keys must be plain strings")
        key = str(key_node.value)
        if key in out:
            raise TaxonomyError(f"{_where(filename, key_node)}: duplicate key {key!r}")
        out[key] = (key_node, value_node)
    return out


_TOPIC_KEYS = {
    "slug",
    "name",
    "description",
    "threshold",
    "title_weight",
    "lead_weight",
    "terms",
    "exclude",
    "dampen",
    "dampen_factor",
    "model",
}
_TERM_KEYS = {
    "match",
    "weight",
    "label",
    "requires",
    "window",
    "unless",
    "case_sensitive",
    "context",
    "lang",
    "note",
}


def _scalar(filename: str, node: yaml.Node, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise TaxonomyError(f"{_where(filename, node)}: {what} must be a single value, not a list or mapping")
    # The composer already resolved the implicit tag (int, float, bool, str); construct as safe_load would.
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:  # a tag safe_load refuses (!!python/object), bad !!binary...
        problem = _one_line(exc.problem or exc.context or "not a valid value")
        raise TaxonomyError(f"{_where(filename, node)}: {what}: YAML error: {problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a date that is none (2021-13-45), !!int abc
        raise TaxonomyError(
            f"{_where(filename, node)}: {what}: {node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]} "
            f"({_one_line(exc)}; quote it if it is text)"
        ) from None


def _is_number_text(value: str) -> bool:
    return _YAML12_FLOAT.fullmatch(value.strip()) is not None


def _bound(value: float) -> str:
    return f"{value:g}"


def _number(
    filename: str,
    node: yaml.Node,
    what: str,
    *,
    lo: float,
    hi: float,
    lo_open: bool = False,
    hi_open: bool = False,
    why_high: str = "",
) -> float:
    """A number in [lo, hi] (``lo_open``/``hi_open``: the bound itself excluded); ``why_high`` is added
    to the message of a value at or above ``hi`` that is refused."""
    value = _scalar(filename, node, what)
    where = _where(filename, node)
    if value is None:
        raise TaxonomyError(f"{where}: {what} is empty (give a number)")
    if isinstance(value, str) and _is_number_text(value):
        if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
            raise TaxonomyError(
                f"{where}: {what} must be a number, got the string {value!r} (remove the quotes)"
            )
        value = float(value)  # "1e3", "1e400": numbers in YAML 1.2, strings to PyYAML
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TaxonomyError(f"{where}: {what} must be a number, got {node.value!r}")
    ok = (
        not math.isnan(value)
        and (value > lo if lo_open else value >= lo)
        and (value < hi if hi_open else value <= hi)
    )
    if not ok:
        bracket = ("(" if lo_open else "[") + f"{_bound(lo)}, {_bound(hi)}" + (")" if hi_open else "]")
        why = why_high if not math.isnan(value) and value >= hi else ""
        raise TaxonomyError(f"{where}: {what} must be in {bracket}, got {node.value}{why}")
    return float(value)


def _bool(filename: str, node: yaml.Node, what: str) -> bool:
    value = _scalar(filename, node, what)
    if value is None:
        raise TaxonomyError(f"{_where(filename, node)}: {what} is empty (true or false)")
    if not isinstance(value, bool):
        raise TaxonomyError(f"{_where(filename, node)}: {what} must be true or false, got {node.value!r}")
    return value


def _string(filename: str, node: yaml.Node, what: str) -> str:
    value = _scalar(filename, node, what)
    if value is None:
        raise TaxonomyError(f"{_where(filename, node)}: {what} is empty")
    if not isinstance(value, str):
        # Numbers/booleans as terms are almost always a YAML surprise ("no" -> False); say so.
        raise TaxonomyError(
            f"{_where(filename, node)}: {what} must be a string, got {node.value!r} (quote it)"
        )
    return value


def _strings(filename: str, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: list[tuple[str, yaml.Node]] = []
    for item in items:
        out.append((_string(filename, item, what), item))
    if not out:
        raise TaxonomyError(f"{_where(filename, node)}: {what} must not be empty")
    return out


def _form(filename: str, node: yaml.Node, raw: str, what: str, *, stem_ok: bool = True) -> str:
    form = " ".join(normalise_text(raw).split()).lower()
    bare = form.removesuffix("*")
    if not bare.strip():
        raise TaxonomyError(f"{_where(filename, node)}: empty {what}")
    if "*" in bare:
        raise TaxonomyError(f"{_where(filename, node)}: '*' is only allowed at the end of {what} {raw!r}")
    if form.endswith("*") and bare != bare.rstrip():
        raise TaxonomyError(f"{_where(filename, node)}: stem {raw!r}: the '*' must follow the word, with no space")
    if form.endswith("*") and not stem_ok:
        raise TaxonomyError(f"{_where(filename, node)}: {what} {raw!r} cannot be a stem here")
    if form.endswith("*") and len(bare) < 3:
        raise TaxonomyError(f"{_where(filename, node)}: stem {raw!r} is too short (at least 3 characters)")
    return form


def _parse_topic(filename: str, node: yaml.Node) -> Topic:
    m = _mapping(filename, node)
    for key, (knode, _) in m.items():
        if key not in _TOPIC_KEYS:
            allowed = ", ".join(sorted(_TOPIC_KEYS))
            raise TaxonomyError(f"{_where(filename, knode)}: unknown topic key {key!r} (allowed: {allowed})")
    if "slug" not in m:
        raise TaxonomyError(f"{_where(filename, node)}: topic has no 'slug'")
    slug_node = m["slug"][1]
    slug = _string(filename, slug_node, "slug")
    if not slug.strip():
        raise TaxonomyError(f"{_where(filename, slug_node)}: slug is empty")
    if not _SLUG_RE.match(slug):
        raise TaxonomyError(
            f"{_where(filename, slug_node)}: slug {slug!r} must be lower-case letters, digits and single hyphens"
        )
    if len(slug) > MAX_SLUG:
        raise TaxonomyError(
            f"{_where(filename, slug_node)}: slug is {len(slug)} characters; at most {MAX_SLUG} (it names the "
            "Kafka topic {prefix}.topic.<slug>, and Kafka allows 249)"
        )
    name = _string(filename, m["name"][1], "name") if "name" in m else slug
    threshold = (
        _number(
            filename,
            m["threshold"][1],
            "threshold",
            lo=0.0,
            hi=1.0,
            lo_open=True,
            hi_open=True,
            why_high=" (scores are below 1: r/(r+6), or a learned model's sigmoid, so it would never tag)",
        )
        if "threshold" in m
        else DEFAULT_THRESHOLD
    )
    title_weight = (
        _number(filename, m["title_weight"][1], "title_weight", lo=0.0, hi=100.0)
        if "title_weight" in m
        else DEFAULT_TITLE_WEIGHT
    )
    lead_weight = (
        _number(filename, m["lead_weight"][1], "lead_weight", lo=0.0, hi=100.0)
        if "lead_weight" in m
        else DEFAULT_LEAD_WEIGHT
    )
    exclude: list[str] = []
    if "exclude" in m:
        for raw, item in _strings(filename, m["exclude"][1], "exclude phrase"):
            exclude.append(_form(filename, item, raw, "exclude phrase", stem_ok=False))
    dampen: list[str] = []
    if "dampen" in m:
        for raw, item in _strings(filename, m["dampen"][1], "dampen cue"):
            dampen.append(_form(filename, item, raw, "dampen cue"))
    dampen_factor = (
        _number(filename, m["dampen_factor"][1], "dampen_factor", lo=0.0, hi=1.0)
        if "dampen_factor" in m
        else DEFAULT_DAMPEN_FACTOR
    )
    if "terms" not in m:
        raise TaxonomyError(f"{_where(filename, node)}: topic {slug!r} has no 'terms'")
    terms_node = m["terms"][1]
    if not isinstance(terms_node, yaml.SequenceNode) or not terms_node.value:
        raise TaxonomyError(f"{_where(filename, terms_node)}: 'terms' must be a non-empty list")
    terms = tuple(_parse_term(filename, item) for item in terms_node.value)
    if all(t.context for t in terms):
        raise TaxonomyError(f"{_where(filename, terms_node)}: topic {slug!r} has only context terms")
    _check_forms_can_count(slug, terms, exclude)
    model = _parse_model(filename, m["model"][1]) if "model" in m else None
    return Topic(
        slug=slug,
        name=name,
        terms=terms,
        exclude=tuple(exclude),
        dampen=tuple(dampen),
        dampen_factor=dampen_factor,
        threshold=threshold,
        title_weight=title_weight,
        lead_weight=lead_weight,
        model=model,
        source=_where(filename, node),
    )


def _check_forms_can_count(slug: str, terms: tuple[Term, ...], exclude: list[str]) -> None:
    """A form that can never count is a mistake, not a silent no-op: one that an earlier term of the
    topic has without conditions (a word is counted for the first term whose conditions hold, so the
    later term never is), or one that is itself an exclude phrase of the topic."""
    excluded = set(exclude)
    first: dict[tuple[str, bool], Term] = {}  # form -> the earliest unconditional term that has it
    stems: list[tuple[str, bool, Term]] = []  # the unconditional terms' stems, in order
    for term in terms:
        for form in term.forms:
            key = (form, term.case_sensitive)
            if not term.case_sensitive and form in excluded:
                raise TaxonomyError(
                    f"{term.source}: {form!r} is also an exclude phrase of topic {slug!r}, so this form "
                    "never counts (an exclude names the longer phrase around a term, e.g. 'made in china')"
                )
            earlier = first.get(key)
            if earlier is not None:
                raise TaxonomyError(
                    f"{term.source}: {form!r} is already a form of the term at {earlier.source}, which counts "
                    "it first and always, so here it never counts (keep each form in one term, or give the "
                    "earlier term a 'requires' or 'unless')"
                )
            # a one-word form an earlier stem begins: the stem matches the same word, the same span
            word = form.removesuffix("*")
            if word.isalnum():
                for stem, case_sensitive, by in stems:
                    if case_sensitive == term.case_sensitive and word.startswith(stem):
                        raise TaxonomyError(
                            f"{term.source}: {form!r} begins with the stem '{stem}*' of the term at {by.source}, "
                            "which matches the same word first and always, so here it never counts (put the "
                            "form before the stem's term, or give that term a 'requires' or 'unless')"
                        )
        if not term.requires and not term.unless:
            for form in term.forms:
                first.setdefault((form, term.case_sensitive), term)
                if form.endswith("*"):
                    stems.append((form.removesuffix("*"), term.case_sensitive, term))


def _parse_model(filename: str, node: yaml.Node) -> Combiner:
    m = _mapping(filename, node)
    for key, (knode, _) in m.items():
        if key not in ("bias", "weights", "about"):
            raise TaxonomyError(
                f"{_where(filename, knode)}: unknown model key {key!r} (allowed: about, bias, weights)"
            )
    if "bias" not in m or "weights" not in m:
        raise TaxonomyError(f"{_where(filename, node)}: model needs 'bias' and 'weights'")
    bias = _number(filename, m["bias"][1], "model bias", lo=-1000.0, hi=1000.0)
    weights: list[tuple[str, float]] = []
    sources: list[str] = []
    for name, (knode, vnode) in _mapping(filename, m["weights"][1]).items():
        prefix = next((p for p in COMBINER_PREFIXES if name.startswith(p)), None)
        if prefix is None and name not in COMBINER_FEATURES:
            raise TaxonomyError(
                f"{_where(filename, knode)}: unknown model feature {name!r} (allowed: "
                f"{', '.join(COMBINER_FEATURES)}, or {', '.join(p + '...' for p in COMBINER_PREFIXES)})"
            )
        # a term: / loose: / other: feature naming a term or topic that is not there is checked once
        # the whole taxonomy is read (_unfit_model): the model is then set aside, not an error
        if prefix == "bow:" and (not name[4:] or name[4:] != name[4:].lower() or " " in name[4:]):
            raise TaxonomyError(
                f"{_where(filename, knode)}: model feature {name!r}: a context word is one lower-case word"
            )
        weights.append((name, _number(filename, vnode, f"weight of {name!r}", lo=-1000.0, hi=1000.0)))
        sources.append(_where(filename, knode))
    return Combiner(
        bias=bias, weights=tuple(weights), source=_where(filename, node), weight_sources=tuple(sources)
    )


def _parse_term(filename: str, node: yaml.Node) -> Term:
    if isinstance(node, yaml.ScalarNode):
        # Shorthand: a bare string is a term of weight 1.
        raw = _string(filename, node, "term")
        form = _form(filename, node, raw, "term")
        return Term(label=form.rstrip("*"), forms=(form,), weight=1.0, source=_where(filename, node))
    m = _mapping(filename, node)
    for key, (knode, _) in m.items():
        if key not in _TERM_KEYS:
            allowed = ", ".join(sorted(_TERM_KEYS))
            raise TaxonomyError(f"{_where(filename, knode)}: unknown term key {key!r} (allowed: {allowed})")
    if "match" not in m:
        raise TaxonomyError(f"{_where(filename, node)}: term has no 'match'")
    case_sensitive = (
        _bool(filename, m["case_sensitive"][1], "case_sensitive") if "case_sensitive" in m else False
    )
    raw_forms = _strings(filename, m["match"][1], "match")
    forms: list[str] = []
    for raw, item in raw_forms:
        form = _form(filename, item, raw, "match", stem_ok=not case_sensitive)
        if form not in forms:
            forms.append(form)
    if case_sensitive:
        # Keep the spelling: the tagger compares it with the text as written.
        forms = [" ".join(normalise_text(raw).split()) for raw, _ in raw_forms]
    weight = (
        _number(filename, m["weight"][1], "weight", lo=0.0, hi=100.0, lo_open=True) if "weight" in m else 1.0
    )
    label = _string(filename, m["label"][1], "label") if "label" in m else forms[0].rstrip("*").lower()
    requires = (
        tuple(
            _form(filename, n, r, "requires cue")
            for r, n in _strings(filename, m["requires"][1], "requires cue")
        )
        if "requires" in m
        else ()
    )
    unless = (
        tuple(
            _form(filename, n, r, "unless cue") for r, n in _strings(filename, m["unless"][1], "unless cue")
        )
        if "unless" in m
        else ()
    )
    context = _bool(filename, m["context"][1], "context") if "context" in m else False
    window: int | None = None
    if "window" in m:
        if not requires:
            raise TaxonomyError(f"{_where(filename, m['window'][0])}: 'window' needs 'requires' cues")
        chars = _number(filename, m["window"][1], "window", lo=1.0, hi=100000.0)
        if chars != int(chars):
            raise TaxonomyError(f"{_where(filename, m['window'][1])}: window is a number of characters, got {chars:g}")
        window = int(chars)
    for key in ("lang", "note"):
        if key in m:
            _string(filename, m[key][1], key)
    return Term(
        label=label,
        forms=tuple(forms),
        weight=weight,
        requires=requires,
        unless=unless,
        case_sensitive=case_sensitive,
        context=context,
        window=window,
        source=_where(filename, node),
    )
