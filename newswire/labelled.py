"""A user's labelled items, and how a tagger does on them (``newswire taxonomy eval``).

The file is JSON Lines, one item per line::

    {"title": "...", "text": "...", "lead": "...", "topics": {"china": 2, "russia": 0}, "traps": ["russia"]}

``text`` is required, ``title`` and ``lead`` are optional (a feed item: its headline as title, its
summary as text, as the built-in feed-item set is scored); ``text`` may be empty only when there is
a title. ``topics`` grades the item per topic as the
built-in sets do: 2 the main subject, 1 substantive, 0 absent or a passing mention; a list
(``"topics": ["china"]``) means grade 1 for each topic named. A topic of the taxonomy that a line does
not name is grade 0 for that item. ``traps`` (optional) names topics the item
mentions only in passing or through a false cue, to count how many such items got tagged anyway; a
trap is grade 0 for that item (a trap graded 1 or 2 is an error). ``id`` (optional) names the item in
the list of mistakes, and must be unique in the file; otherwise its line number does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newswire.processors.tag_metrics import rates, summarise, topic_stats
from newswire.processors.tagging import Tagger, reaches

__all__ = ["SWEEP", "Evaluation", "LabelledItem", "LabelsError", "Mistake", "evaluate", "load_labelled"]


class LabelsError(ValueError):
    """A labelled-items file that cannot be used; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class LabelledItem:
    name: str  # its id, or "line N"
    title: str
    text: str
    lead: str | None
    grades: dict[str, int]
    traps: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Mistake:
    topic: str
    item: str
    kind: str  # "missed" (a positive not tagged) or "wrong" (a negative tagged)
    grade: int
    score: float
    title: str
    matches: dict[str, int] = field(default_factory=dict)
    excerpt: str = ""  # the title, or for an item without one the start of its text (70 characters)


def _grades(value: Any, where: str, slugs: set[str]) -> dict[str, int]:
    if isinstance(value, list):
        graded = {str(s): 1 for s in value}
    elif isinstance(value, dict):
        graded = {}
        for slug, grade in value.items():
            if grade not in (0, 1, 2) or isinstance(grade, bool):
                raise LabelsError(f"{where}: grade of {slug!r} must be 0, 1 or 2, got {grade!r}")
            graded[str(slug)] = int(grade)
    else:
        raise LabelsError(f"{where}: 'topics' must be a list of topics or a mapping of topic to grade")
    unknown = sorted(set(graded) - slugs)
    if unknown:
        raise LabelsError(f"{where}: topic {unknown[0]!r} is not in the taxonomy ({', '.join(sorted(slugs))})")
    return {slug: graded.get(slug, 0) for slug in sorted(slugs)}


def load_labelled(path: Path, slugs: list[str]) -> list[LabelledItem]:
    """The items of ``path``, graded for every topic in ``slugs``."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise LabelsError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise LabelsError(f"{path}: not UTF-8 text") from None
    known = set(slugs)
    items: list[LabelledItem] = []
    names: dict[str, int] = {}  # item name -> its line
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelsError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise LabelsError(f"{where}: each line must be a JSON object")
        text, title, lead = obj.get("text"), obj.get("title") or "", obj.get("lead")
        if not isinstance(text, str) or not isinstance(title, str) or not isinstance(lead, (str, type(None))):
            raise LabelsError(f"{where}: needs a 'text' string ('title' and 'lead' are optional strings)")
        if not text.strip() and not title.strip() and not (lead or "").strip():
            raise LabelsError(f"{where}: 'text' is empty and there is no 'title' or 'lead': nothing to tag")
        if "topics" not in obj:
            raise LabelsError(f"{where}: needs 'topics' (a list of topics, or a mapping of topic to grade)")
        traps = obj.get("traps") or []
        if not isinstance(traps, list) or not set(map(str, traps)) <= known:
            raise LabelsError(f"{where}: 'traps' must be a list of topics of the taxonomy")
        grades = _grades(obj["topics"], where, known)
        graded_traps = sorted(t for t in map(str, traps) if grades[t])
        if graded_traps:
            slug = graded_traps[0]
            raise LabelsError(
                f"{where}: trap {slug!r} must be grade 0, but 'topics' grades it {grades[slug]}"
            )
        name = str(obj.get("id") or f"line {lineno}")
        if name in names:
            raise LabelsError(f"{where}: id {name!r} is already the id of line {names[name]}")
        names[name] = lineno
        items.append(
            LabelledItem(
                name=name, title=title, text=text, lead=lead, grades=grades, traps=frozenset(map(str, traps))
            )
        )
    if not items:
        raise LabelsError(f"{path}: no labelled items")
    return items


SWEEP = tuple(round(0.2 + 0.05 * i, 2) for i in range(14))  # 0.20 .. 0.85


@dataclass(frozen=True)
class Evaluation:
    """How a tagger did on labelled items: per topic the figures of ``tag_metrics.summarise`` at the
    topic's threshold, every mistake, and per topic (threshold, precision, recall, F1) at each of
    ``SWEEP``, to choose a new topic's threshold (None where nothing defines a figure, as in
    ``tag_metrics.rates``)."""

    results: dict[str, dict[str, Any]]
    mistakes: list[Mistake]
    sweep: dict[str, list[tuple[float, float | None, float | None, float | None]]]


def evaluate(tagger: Tagger, items: list[LabelledItem]) -> Evaluation:
    thresholds = {t.slug: t.threshold for t in tagger.taxonomy.topics}
    scored = [{t.slug: t for t in tagger.score(it.title, it.text, lead=it.lead)} for it in items]
    results: dict[str, dict[str, Any]] = {}
    mistakes: list[Mistake] = []
    sweep: dict[str, list[tuple[float, float | None, float | None, float | None]]] = {}
    for slug, threshold in thresholds.items():
        triples = []
        for item, tags in zip(items, scored, strict=True):
            tag = tags[slug]
            tagged = reaches(tag.score, threshold)
            grade = item.grades[slug]
            triples.append((grade, tagged, slug in item.traps))
            if tagged != (grade >= 1):
                kind = "wrong" if tagged else "missed"
                excerpt = (item.title or " ".join(item.text.split()))[:70]
                mistakes.append(
                    Mistake(slug, item.name, kind, grade, tag.score, item.title, dict(tag.matches), excerpt)
                )
        results[slug] = summarise(topic_stats(slug, triples))
        sweep[slug] = []
        for cut in SWEEP:
            st = topic_stats(
                slug,
                ((it.grades[slug], reaches(tags[slug].score, cut), False) for it, tags in zip(items, scored, strict=True)),
            )
            sweep[slug].append((cut, *rates(st)))
    return Evaluation(results, mistakes, sweep)
