"""Entity-expansion guard run on every XML feed before feedparser parses it.

What feedparser 6.0.x does itself (checked in its ``sanitizer.replace_doctype`` and ``api.parse``):
it never fetches external entities (``feature_external_ges`` off), and it drops every entity
declaration whose value refers to another entity, so the nested "billion laughs" cannot expand.
What it does not stop: a *literal* entity (``<!ENTITY a "xxxx...">``) referenced many times, the
"quadratic blowup". Its loose (non-XML) parser, used whenever the strict one fails, expands those
without any limit: a 60 KB document became a 1 GB title in 33 s and 3 GB of memory.

So before parsing we ask feedparser's own DOCTYPE rewriter which entities would survive, count how
often the document references them and reject the document when the expansion would exceed
:data:`MAX_ENTITY_EXPANSION` characters. Nesting depth needs no guard: expat and feedparser's
sgmllib-based loose parser are iterative (100,000 nested elements parse in about a second, no
recursion), and the fetcher caps body sizes.
"""

from __future__ import annotations

import re

from feedparser.encodings import convert_to_utf8
from feedparser.sanitizer import replace_doctype

__all__ = ["MAX_ENTITY_EXPANSION", "EntityExpansionError", "check_entity_expansion"]

#: Characters that declared entities may add to a document when expanded.
MAX_ENTITY_EXPANSION = 1_000_000

_ENTITY_DECL = re.compile(rb"<!ENTITY")
# An entity whose value refers to another entity: the building block of "billion laughs". feedparser
# drops such declarations, but the document is hostile or broken either way, so it is refused.
# (character references such as &#160; are fine: they expand to one character)
_NESTED_ENTITY = re.compile(rb"""<!ENTITY\s+%?\s*[^\s>]+\s+(?:"[^"]*&(?!\#)[^"]*"|'[^']*&(?!\#)[^']*')""")


class EntityExpansionError(ValueError):
    """The document's DOCTYPE declares entities that would expand beyond the limit."""


def check_entity_expansion(body: bytes, content_type: str | None = None) -> None:
    """Raise :class:`EntityExpansionError` when declared entities would blow the document up."""
    headers = {"content-type": content_type} if content_type else {}
    # feedparser looks for declarations after converting to UTF-8 (a UTF-16 feed hides them from
    # a byte search), so the check does the same conversion.
    data: bytes = convert_to_utf8(headers, body, {})
    if not _ENTITY_DECL.search(data):
        return
    if _NESTED_ENTITY.search(data):
        raise EntityExpansionError("the DOCTYPE declares entities built from other entities (entity expansion attack)")
    _version, stripped, entities = replace_doctype(data)
    total = 0
    for name, value in entities.items():
        uses = stripped.count(b"&" + name.encode("utf-8") + b";")
        total += uses * len(value)
        if total > MAX_ENTITY_EXPANSION:
            raise EntityExpansionError(
                f"entity '{name}' declared in the DOCTYPE would expand the document "
                f"by more than {MAX_ENTITY_EXPANSION:,} characters"
            )
