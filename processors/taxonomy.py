"""Loading and validating a topic taxonomy (YAML), with errors that name the file and line.

A taxonomy is one YAML file or a directory of them (``*.yaml``/``*.yml``, read in name order). A file
holds one topic (a mapping with ``slug``) or several (a mapping with ``topics: [...]``). The format is
documented in ``docs/tagging.md``; the shipped taxonomy lives in ``newswire/taxonomy/``.

Validation walks yaml's composed node tree rather than the loaded Python values, because only the nodes
keep ``start_mark`` (file line) for every key and list item.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
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

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
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
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        if not files:
            raise TaxonomyError(f"{p}:0: no .yaml files in this directory")
        name = p.name or "taxonomy"
    elif p.is_file():
        files = [p]
        name = p.stem
    else:
        raise TaxonomyError(f"{p}:0: no such file or directory")
    docs_: list[tuple[str, str]] = []
    for f in files:
        try:
            docs_.append((str(f), f.read_text(encoding="utf-8")))
        except UnicodeDecodeError as exc:
            raise TaxonomyError(f"{f}:0: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise TaxonomyError(f"{f}:0: cannot read ({exc.strerror})") from None
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
    for topic in topics:
        if topic.model is None:
            continue
        for feature, _ in topic.model.weights:
            if feature.startswith("other:") and feature[6:] not in seen:
                raise TaxonomyError(
                    f"{topic.model.source}: model feature {feature!r} names no topic of this taxonomy"
                )
    if not topics:
        raise TaxonomyError(f"{docs[0][0] if docs else name}:0: the taxonomy defines no topics")
    digest = hashlib.sha256(json.dumps([_canon(t) for t in topics], sort_keys=True).encode()).hexdigest()
    return Taxonomy(name=name, version=f"{name}-{digest[:12]}", topics=tuple(topics))


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


def _parse_file(filename: str, text: str) -> list[Topic]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise TaxonomyError(f"{filename}:{line}: YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{filename}:0: YAML error: {exc}") from None
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
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _number(
    filename: str, node: yaml.Node, what: str, *, lo: float, hi: float, lo_open: bool = False
) -> float:
    value = _scalar(filename, node, what)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TaxonomyError(f"{_where(filename, node)}: {what} must be a number, got {node.value!r}")
    ok = (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        bracket = "(" if lo_open else "["
        raise TaxonomyError(f"{_where(filename, node)}: {what} must be in {bracket}{lo}, {hi}], got {value}")
    return float(value)


def _bool(filename: str, node: yaml.Node, what: str) -> bool:
    value = _scalar(filename, node, what)
    if not isinstance(value, bool):
        raise TaxonomyError(f"{_where(filename, node)}: {what} must be true or false, got {node.value!r}")
    return value


def _string(filename: str, node: yaml.Node, what: str) -> str:
    value = _scalar(filename, node, what)
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
    if not _SLUG_RE.match(slug):
        raise TaxonomyError(
            f"{_where(filename, slug_node)}: slug {slug!r} must be lower-case letters, digits and single hyphens"
        )
    name = _string(filename, m["name"][1], "name") if "name" in m else slug
    threshold = (
        _number(filename, m["threshold"][1], "threshold", lo=0.0, hi=1.0, lo_open=True)
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
    model = _parse_model(filename, m["model"][1], terms) if "model" in m else None
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


def _parse_model(filename: str, node: yaml.Node, terms: tuple[Term, ...]) -> Combiner:
    m = _mapping(filename, node)
    for key, (knode, _) in m.items():
        if key not in ("bias", "weights", "about"):
            raise TaxonomyError(
                f"{_where(filename, knode)}: unknown model key {key!r} (allowed: about, bias, weights)"
            )
    if "bias" not in m or "weights" not in m:
        raise TaxonomyError(f"{_where(filename, node)}: model needs 'bias' and 'weights'")
    bias = _number(filename, m["bias"][1], "model bias", lo=-1000.0, hi=1000.0)
    labels = {t.label for t in terms}
    weights: list[tuple[str, float]] = []
    for name, (knode, vnode) in _mapping(filename, m["weights"][1]).items():
        prefix = next((p for p in COMBINER_PREFIXES if name.startswith(p)), None)
        if prefix is None and name not in COMBINER_FEATURES:
            raise TaxonomyError(
                f"{_where(filename, knode)}: unknown model feature {name!r} (allowed: "
                f"{', '.join(COMBINER_FEATURES)}, or {', '.join(p + '...' for p in COMBINER_PREFIXES)})"
            )
        if prefix in ("term:", "loose:") and name[len(prefix) :] not in labels:
            raise TaxonomyError(f"{_where(filename, knode)}: model feature {name!r} names no term label")
        if prefix == "bow:" and (not name[4:] or name[4:] != name[4:].lower() or " " in name[4:]):
            raise TaxonomyError(
                f"{_where(filename, knode)}: model feature {name!r}: a context word is one lower-case word"
            )
        weights.append((name, _number(filename, vnode, f"weight of {name!r}", lo=-1000.0, hi=1000.0)))
    return Combiner(bias=bias, weights=tuple(weights), source=_where(filename, node))


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
        window = int(_number(filename, m["window"][1], "window", lo=1.0, hi=100000.0))
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
