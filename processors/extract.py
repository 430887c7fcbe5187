"""Article extraction: decode the page ourselves, then trafilatura for text and metadata.

Decoding first matters: given raw bytes of GB2312/GBK pages trafilatura can garble them; decoded as
GB18030 (a superset of both) they come out right. The page goes to trafilatura as text, not as a
parsed lxml tree: trafilatura's own loader cleans the markup in ways an ``lxml.html`` tree misses
(two scrapinghub pages lost a third of their text that way).

Options were chosen with ``benchmarks/extraction_eval.py`` on the corpus' 661 truth pages (figures in
the module constants' comments). ``extract_article`` is a top-level function so it can run in a
process pool.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import trafilatura
from htmldate import find_date
from lxml import etree
from lxml import html as lxml_html
from trafilatura.metadata import (
    META_URL,
    examine_meta,
    extract_author,
    extract_meta_json,
    extract_sitename,
    extract_title,
)
from trafilatura.utils import load_html

from newswire.contract import parse_utc
from newswire.processors import extract_task, trafilatura_speedups
from newswire.processors.feedcommon import language_code
from newswire.records import Extraction

__all__ = [
    "EXTRACTOR",
    "TRAFILATURA_OPTIONS",
    "declared_charset",
    "decode_html",
    "extract_article",
    "page_language",
]

log = logging.getLogger(__name__)

EXTRACTOR = extract_task.EXTRACTOR

# same selections in less CPU (see the module); here, so every process that extracts has them
trafilatura_speedups.install()

#: Options for ``trafilatura.bare_extraction``. ``favor_precision`` raised mean token F1 from 0.941
#: to 0.949 on the 661 truth pages and is no slower (it prunes more before the costly steps).
TRAFILATURA_OPTIONS: dict[str, Any] = {
    "favor_precision": True,
    "include_comments": False,
    "include_tables": True,
}

# htmldate: the page's original publication date, with its time when the page gives one. No
# "extensive search": it costs a quarter of the extraction time and on pages without date metadata
# it mostly guesses (a copyright year as 1 January, an archive date).
_DATE_PARAMS: dict[str, Any] = {
    "original_date": True,
    "extensive_search": False,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
}

MIN_WORDS = 5  # below this (and under 40 characters) the "article" is a cookie notice or an error page
_MIN_CHARS = 40  # Chinese/Japanese text has few spaces: enough characters also make an article

# Declared charsets that browsers replace by a wider one (WHATWG Encoding): pages labelled with the
# narrow one routinely use characters only the wider one has.
_WIDER = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "big5": "big5hkscs",
    "iso-8859-9": "cp1254",
}
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_NOT_HTML = (
    "image/",
    "audio/",
    "video/",
    "font/",
    "application/pdf",
    "application/zip",
    "application/octet-stream",
)

# Language from the page: <html lang>, Content-Language, og:locale.
_LANG_ATTR = re.compile(
    r"<html[^>]*?\s(?:xml:)?lang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)"
    r"|<meta[^>]+(?:http-equiv=[\"']?content-language|property=[\"']?og:locale)[^>]*?"
    r"content=[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)*)",
    re.IGNORECASE,
)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().lower()
    name = _WIDER.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def declared_charset(body: bytes, content_type: str | None) -> str | None:
    """The charset the page says it uses: BOM, then HTTP header, then <meta> in the first 8 KB."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return name
    if content_type:
        header = _HEADER_CHARSET.search(content_type)
        if header and (codec := _codec(header.group(1))):
            return codec
    meta = _META_CHARSET.search(body[:8192])
    if meta:
        return _codec(meta.group(1).decode("ascii", "ignore"))
    return None


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Bytes to text with the declared charset.

    A page whose label lies (a GB2312 label on UTF-8 bytes) fails strict decoding and is tried as
    UTF-8; a page with no label that is not UTF-8 is sniffed (charset_normalizer); a label that fits
    except for a few bad bytes is trusted with replacement characters.
    """
    declared = declared_charset(body, content_type)
    for codec in dict.fromkeys((declared, "utf-8")):
        if codec is None:
            continue
        try:
            return body.decode(codec).lstrip("\ufeff")
        except (UnicodeDecodeError, LookupError):
            continue
    if declared is not None and _mostly_decodes(body, declared):
        return body.decode(declared, errors="replace").lstrip("\ufeff")
    if _mostly_decodes(body, "utf-8"):
        return body.decode("utf-8", errors="replace").lstrip("\ufeff")
    sniffed = _sniff(body)
    return body.decode(sniffed or declared or "cp1252", errors="replace")


def _sniff(body: bytes) -> str | None:
    """charset_normalizer's guess, except that windows-1252 wins when it is about as plausible.

    Among single-byte Latin encodings its ranking is noise (French in cp1252 came out as cp1257:
    "trčs"), while windows-1252 is what browsers assume for unlabelled Western pages.
    """
    from charset_normalizer import from_bytes  # a trafilatura dependency

    results = from_bytes(body[:200_000])
    best = results.best()
    if best is None or not best.encoding:
        return None
    for match in results:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + _CP1252_MARGIN:
            return "cp1252"
    return _codec(best.encoding) or best.encoding


_CP1252_MARGIN = 0.05  # charset_normalizer "chaos" (0..1) that windows-1252 may trail the best guess by


def _mostly_decodes(body: bytes, codec: str) -> bool:
    """At most one undecodable byte per 2,000: a fitting label with a few broken bytes."""
    text = body.decode(codec, errors="replace")
    return text.count("\ufffd") <= max(1, len(body) // 2000)


def page_language(page: str, text: str) -> str | None:
    """ISO 639-1 code from <html lang>, Content-Language or og:locale; else detected from the text."""
    for match in _LANG_ATTR.finditer(page[:20000]):
        code = language_code(match.group(1) or match.group(2))
        if code is not None:
            return code
    if len(text) < _MIN_CHARS:
        return None
    import py3langid  # ships its model in the package: no download, no network

    code, _score = py3langid.classify(text[:5000])
    code = str(code).lower()
    return code if re.fullmatch(r"[a-z]{2}", code) else None


def _authors(value: str | None) -> tuple[str, ...]:
    """trafilatura joins authors with "; "; bylines also say "A and B", "A & B", "A und B"."""
    if not value:
        return ()
    parts = re.split(r";|\s+and\s+|\s+&\s+|\s+und\s+|\s+et\s+|\s+y\s+|\s+e\s+", value)
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _is_html(body: bytes, content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith(_NOT_HTML):
        return False
    return not body.startswith((b"%PDF-", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04"))


@dataclass(frozen=True)
class _Metadata:
    title: str | None
    author: str | None
    date: str | None
    sitename: str | None


def _metadata(tree: lxml_html.HtmlElement, url: str | None) -> _Metadata:
    """The metadata the message needs, from the page's meta tags and JSON-LD (trafilatura's own
    readers) and htmldate, as trafilatura's ``with_metadata`` does, without its search for
    categories, tags and a licence (a tenth of the extraction's time, for fields the message does not
    carry)."""
    try:
        found = examine_meta(tree)
        if found.author and " " not in found.author:  # a handle or a site name, not a person
            found.author = None
        with contextlib.suppress(Exception):  # malformed JSON-LD costs the JSON-LD, not the page
            found = extract_meta_json(tree, found)
        title = found.title or extract_title(tree)
        author = found.author or extract_author(tree)
        sitename = found.sitename or extract_sitename(tree)
        date = find_date(tree, url=url, **_DATE_PARAMS)
    except Exception as exc:  # noqa: BLE001 -- hostile markup must cost metadata, not the article
        log.debug("metadata failed on %s: %s: %s", url, type(exc).__name__, exc)
        return _Metadata(None, None, None, None)
    if sitename:
        sitename = sitename.lstrip("@")
        if sitename and "." not in sitename and not sitename[0].isupper():
            sitename = sitename.title()
    elif (match := META_URL.match(found.url or url or "")) is not None:
        sitename = match[1]
    return _Metadata(title, author, date, sitename)


def _run_trafilatura(tree: lxml_html.HtmlElement, url: str | None) -> Any:
    try:
        return trafilatura.bare_extraction(tree, url=url, **TRAFILATURA_OPTIONS)
    except Exception as exc:  # noqa: BLE001 -- hostile pages must cost an article's text, not the worker
        log.debug("trafilatura failed on %s: %s: %s", url, type(exc).__name__, exc)
        return None


def extract_article(body: bytes, url: str | None, content_type: str | None = None) -> Extraction | None:
    """Text and metadata of an article page, or None when it holds no usable text. ``url`` (the
    page's address, None when unknown) helps trafilatura and htmldate; nothing requires it."""
    if not body or not _is_html(body, content_type):
        return None
    page = decode_html(body, content_type)
    # trafilatura's own loader (as when it is given the text), falling back to a plain lxml parse for
    # documents it gives up on ("html" not in the first 50 characters and fewer than two elements)
    tree = load_html(page)
    if tree is None:
        try:
            tree = lxml_html.document_fromstring(page)
        except (ValueError, etree.ParserError):
            return None
    meta = _metadata(tree, url)  # first: the extraction below prunes the tree
    with trafilatura_speedups.handed_over(tree):  # not read again: trafilatura need not copy it
        document = _run_trafilatura(tree, url)
    if document is None:
        return None
    text = (document.text or "").strip()
    if len(text.split()) < MIN_WORDS and len(text) < _MIN_CHARS:
        return None
    return Extraction(
        text=text,
        title=(meta.title or "").strip() or None,
        authors=_authors(meta.author),
        published=parse_utc(meta.date),
        language=page_language(page, text),
        site_name=(meta.sitename or "").strip() or None,
    )
