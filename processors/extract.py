"""Article extraction: decode the page ourselves, then trafilatura for text and metadata.

Decoding first matters: given raw bytes of GB2312/GBK pages trafilatura can garble them; decoded as
GB18030 (a superset of both) they come out right. ``extract_article`` is a top-level function so it can
run in a process pool.
"""

from __future__ import annotations

import codecs
import logging
import re
from datetime import datetime, timezone

import trafilatura
from lxml import html as lxml_html

from newswire.records import Extraction

log = logging.getLogger(__name__)

EXTRACTOR = f"trafilatura {trafilatura.__version__}"

# Declared charsets that are subsets of a wider one browsers use in their place.
_WIDER = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "iso-8859-1": "cp1252", "latin-1": "cp1252",
          "us-ascii": "cp1252", "ascii": "cp1252", "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
          "shift_jis": "cp932", "x-sjis": "cp932", "tis-620": "cp874", "big5": "big5hkscs"}
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
_HTML_LANG = re.compile(r"^[A-Za-z]{2}(?:$|[-_])")
_DATE_PARAMS = {"original_date": True, "extensive_search": True, "outputformat": "%Y-%m-%dT%H:%M:%S%z"}
MIN_WORDS = 5  # below this the "article" is boilerplate (a cookie notice, a 'page not found')


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
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return name
    if content_type:
        match = _HEADER_CHARSET.search(content_type)
        if match and (codec := _codec(match.group(1))):
            return codec
    match = _META_CHARSET.search(body[:8192])
    if match:
        return _codec(match.group(1).decode("ascii", "ignore"))
    return None


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Bytes to text with the declared charset; pages that lie (a GB2312 label on UTF-8 bytes) are
    caught because strict decoding fails, and then UTF-8 is tried before a lenient decode."""
    declared = declared_charset(body, content_type)
    for codec in (declared, "utf-8"):
        if codec is None:
            continue
        try:
            return body.decode(codec).lstrip("\ufeff")
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:200_000]).best()
        if best is not None and best.encoding:
            return body.decode(best.encoding, errors="replace")
    except ImportError:  # pragma: no cover - charset_normalizer comes with trafilatura's deps
        pass
    return body.decode(declared or "cp1252", errors="replace")


_LANG_ATTR = re.compile(
    r"<html[^>]*?\s(?:xml:)?lang\s*=\s*[\"']?([A-Za-z]{2}(?:[-_][A-Za-z0-9]+)*)"
    r"|<meta[^>]+(?:http-equiv=[\"']?content-language|property=[\"']?og:locale)[^>]*?content=[\"']?([A-Za-z]{2})",
    re.I,
)


def page_language(page: str, text: str) -> str | None:
    """ISO 639-1 from <html lang>, Content-Language or og:locale; else detected from the text."""
    for match in _LANG_ATTR.finditer(page[:20000]):
        value = match.group(1) or match.group(2)
        if value and _HTML_LANG.match(value):
            return value[:2].lower()
    if len(text) < 40:
        return None
    try:
        import py3langid

        code, _ = py3langid.classify(text[:5000])
        return str(code)[:2].lower() if code else None
    except Exception:  # detection is a nicety; never lose the article over it
        return None


def _published(value: str | None) -> datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    return None


def _authors(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    parts = [p.strip() for p in re.split(r";|\s+and\s+|\s*&\s*|\s+und\s+|\s+et\s+|\s+y\s+", value) if p.strip()]
    return tuple(dict.fromkeys(parts))


def extract_article(body: bytes, url: str, content_type: str | None = None) -> Extraction | None:
    """Text and metadata of an article page, or None when it holds no usable text."""
    if not body:
        return None
    text_html = decode_html(body, content_type)
    try:
        tree = lxml_html.document_fromstring(text_html)
    except (ValueError, lxml_html.etree.ParserError):
        return None
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        date_extraction_params=_DATE_PARAMS,
    )
    if document is None:
        return None
    text = (document.text or "").strip()
    if len(text.split()) < MIN_WORDS and len(text) < 40:  # CJK text has few spaces: count characters too
        return None
    return Extraction(
        text=text,
        title=(document.title or "").strip() or None,
        authors=_authors(document.author),
        published=_published(document.date),
        language=page_language(text_html, text),
        site_name=(document.sitename or "").strip() or None,
    )
