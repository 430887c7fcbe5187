"""What ``newswire tag`` and ``newswire taxonomy check`` print: a tagger's reasons, for people.

Pure formatting; the CLI reads the input and builds the tagger.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from newswire.processors.tagging import Tagger, TopicExplanation
from newswire.processors.taxonomy import Taxonomy

__all__ = ["combiner_lines", "explanation_json", "explanation_lines", "split_title", "taxonomy_lines"]


def split_title(text: str) -> tuple[str, str]:
    """A plain-text item as a feed item is read: the first non-empty line is the title, the rest the
    text (a headline alone is its own text, so that it still has a body)."""
    lines = text.strip().splitlines()
    if not lines:
        return "", ""
    title = lines[0].strip()
    body = "\n".join(lines[1:]).strip()
    return title, body


def _counts(values: dict[str, int] | dict[str, float], fmt: str) -> str:
    return ", ".join(f"{k} {format(v, fmt)}" for k, v in values.items())


def explanation_lines(explained: list[TopicExplanation], *, show_all: bool) -> list[str]:
    """One block per topic: the verdict line, then the evidence behind it."""
    lines: list[str] = []
    width = max((len(e.slug) for e in explained), default=0)
    for e in explained:
        if not show_all and not e.tagged:
            continue
        verdict = "TAGGED" if e.tagged else "-"
        how = "no kept match" if e.scorer == "none" else f"{e.scorer}, evidence {e.evidence:.2f}"
        lines.append(f"{e.slug:<{width}}  {e.score:.3f}  {verdict:<6}  threshold {e.threshold:.2f}  ({how})")
        if e.terms:
            lines.append(f"{'':<{width}}  terms: {_counts(e.terms, '.2f')}")
        if e.matches:
            lines.append(f"{'':<{width}}  matched: {_counts(e.matches, 'd')}")
        for why, words in e.dropped.items():
            lines.append(f"{'':<{width}}  not counted ({why}): {_counts(words, 'd')}")
        if e.damped:
            lines.append(f"{'':<{width}}  damped: a 'dampen' cue (sport, human interest) scaled the evidence")
        if e.listed:
            lines.append(f"{'':<{width}}  {e.listed:.0%} of the hits sit in an enumeration (each counts a quarter)")
    if not lines:
        lines.append("no topic tagged" + ("" if show_all else " (--all shows every topic's score)"))
    return lines


def explanation_json(version: str, explained: list[TopicExplanation]) -> dict[str, Any]:
    return {
        "taxonomy": version,
        "topics": [t.slug for t in explained if t.tagged],
        "scores": [asdict(t) for t in explained],
    }


def taxonomy_lines(taxonomy: Taxonomy) -> list[str]:
    lines = [f"{taxonomy.version}: {len(taxonomy.topics)} topics"]
    width = max(len(t.slug) for t in taxonomy.topics)
    for t in taxonomy.topics:
        forms = sum(len(term.forms) for term in t.terms)
        scorer = "combiner" if t.model is not None else "plain"
        lines.append(
            f"  {t.slug:<{width}}  {len(t.terms)} terms ({forms} forms), {len(t.exclude)} excludes, "
            f"threshold {t.threshold:.2f}, {scorer}  [{t.source}]"
        )
    return lines


def combiner_lines(tagger: Tagger) -> list[str]:
    """Whether each embedding combiner (the ``embeddings`` extra: the directory NEWSWIRE_EMBEDDINGS
    names, else the shipped ones) can be used with the tagger's taxonomy, and why not."""
    from newswire.processors.embeddings import (
        ENV_VAR,
        extra_missing,
        load_combiners,
        switch_directory,
        switched_on,
        unfit_reason,
    )

    lines = []
    taxonomy = tagger.taxonomy
    combiners = load_combiners(switch_directory())
    if switched_on():
        missing = extra_missing()
        if missing is not None:
            lines.append(f"  embeddings extra: {ENV_VAR} is set, but {missing}; the keyword tagger is used")
        if not combiners:
            where = switch_directory() or "none ship at present"
            lines.append(f"  embeddings extra: {ENV_VAR} is set, but there is no embedding combiner ({where})")
    for slug, comb in sorted(combiners.items()):
        if slug not in taxonomy.slugs:
            lines.append(f"  embeddings extra: {comb.source} is for topic {slug}, which is not in this taxonomy")
            continue
        reason = unfit_reason(comb, taxonomy.version, tagger.inputs_digest)
        if reason is None:
            lines.append(f"  embeddings extra: {slug} has an embedding combiner that fits ({comb.source})")
        else:
            lines.append(
                f"  embeddings extra: {slug}'s embedding combiner is not used: {reason} ({comb.source}; "
                "retrain with eval/train_embeddings.py --write)"
            )
    return lines
