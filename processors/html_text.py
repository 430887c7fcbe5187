"""HTML fragments (feed titles, summaries, content) to plain text.

Paragraph structure survives as ``"\\n\\n"`` between blocks when asked; everything else is one
line with whitespace collapsed. lxml's HTML parser does the entity decoding and the tag soup.
"""

from __future__ import annotations

import html
import re
import threading

from lxml import etree

__all__ = ["collapse", "html_to_text", "plain_to_text"]

# Elements whose start or end begins a new paragraph in the text.
_BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
# Elements whose text is never reader-visible content.
_SKIP = frozenset(
    ["script", "style", "noscript", "template", "head", "title", "iframe", "object", "embed", "svg", "math"]
)
_BREAK = "\x00"  # marker between blocks; cannot occur in text lxml hands back
_WS = re.compile(r"\s+")
# C0 controls that are not whitespace, and DEL: valid JSON as escapes, but no text has them and some
# stores refuse them (PostgreSQL will not keep a NUL in text or jsonb).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # no UTF-8 encodes one: it stands for a character lost
_TAG = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n\s*\n")

_LOCAL = threading.local()  # one parser per thread: an lxml parser's error log is per instance


def _parser() -> etree.HTMLParser:
    parser: etree.HTMLParser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = etree.HTMLParser(
            encoding="utf-8", remove_comments=True, remove_pis=True, no_network=True, default_doctype=False
        )
        _LOCAL.parser = parser
    return parser


def collapse(text: str) -> str:
    """All whitespace runs to one space, stripped; control characters dropped, a lone surrogate
    replaced by U+FFFD."""
    text = _CONTROL.sub("", text)
    if not text.isascii():
        text = replace_lone_surrogates(text)
    return _WS.sub(" ", text).strip()


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate (a JSON escape, a bad character reference) as U+FFFD:
    no text holding one can be encoded as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def plain_to_text(text: str, *, paragraphs: bool = False) -> str:
    """Plain text: blank lines are paragraph breaks (when kept), other whitespace collapses."""
    if not paragraphs:
        return collapse(text)
    parts = (collapse(part) for part in _BLANK_LINES.split(text))
    return "\n\n".join(part for part in parts if part)


def html_to_text(markup: str, *, paragraphs: bool = False) -> str:
    """Visible text of an HTML fragment, entities decoded; blocks joined by ``"\\n\\n"`` if asked."""
    if "<" not in markup and "&" not in markup:
        return collapse(markup)  # in HTML, newlines are just whitespace
    pieces = _walk(markup)
    if pieces is None:
        # The parser gave up (libxml2 stops at nesting depth 256): fall back to stripping tags.
        pieces = [html.unescape(_TAG.sub(_BREAK, markup))]
    joined = "".join(pieces)
    if not paragraphs:
        return collapse(joined.replace(_BREAK, " "))
    blocks = (collapse(block) for block in joined.split(_BREAK))
    return "\n\n".join(block for block in blocks if block)


def _walk(markup: str) -> list[str] | None:
    data = markup.replace("\x00", "").encode("utf-8", "replace")
    parser = _parser()
    root = etree.fromstring(b"<html><body>" + data + b"</body></html>", parser)
    if root is None or any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        return None
    pieces: list[str] = []
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _SKIP:
                walker.skip_subtree()
                continue
            if tag in _BLOCKS:
                pieces.append(_BREAK)
            if element.text:
                pieces.append(element.text)
        else:
            if tag in _BLOCKS:
                pieces.append(_BREAK)
            if element.tail:
                pieces.append(element.tail)
    return pieces
