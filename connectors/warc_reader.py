"""Reading WARC files (ISO 28500): ours and any standard WARC, gzip per record or uncompressed.

Two passes, so a big archive never sits in memory:

* :func:`scan` walks a file once and yields one :class:`ArchivedResponse` per HTTP ``response``
  record (target URI, WARC-Date, status, headers, the first bytes of the payload for sniffing, and a
  :class:`RecordRef` = file + offset);
* :class:`BodyReader` / :func:`read_body` read one record's payload again by its offset, on demand.

Damage is counted and skipped, never fatal: a region that fastwarc cannot parse (garbage bytes, a
garbage record) ends that iterator; the scan then looks for the next record start (the next gzip
member, or the next ``WARC/1.x`` line in an uncompressed file), restarts there and counts one
malformed record per damaged region. A truncated last record (a crash or a cut copy) is detected
(incomplete gzip member, or an uncompressed file not ending in the record separator) and dropped,
because fastwarc would otherwise yield it with a silently short body.

A file compressed as one gzip stream (not per record) cannot be read at an offset: its bodies are
kept in memory (:attr:`RecordRef.body`) and a warning says so.
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Self

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType
from warcio.bufferedreaders import ChunkedDataReader

from newswire.contract import parse_utc

from .content_coding import DecodeError, decode

log = logging.getLogger(__name__)

KIND_HEADER = "WARC-Newswire-Kind"  # written by connectors.warc_writer: "feed" or "page"
WARC_SUFFIXES = (".warc", ".warc.gz")
HEAD_BYTES = 2048  # payload prefix kept for sniffing feeds vs pages
_GZIP_MAGIC = b"\x1f\x8b\x08"
_RECORD_END = b"\r\n\r\n"
_ENCODING_HEADERS = ("content-encoding", "transfer-encoding")
# A payload archived compressed is decoded up to this size: a decompression bomb in a foreign WARC stops
# here (the live fetch caps pages at 5 MiB and feeds at 10 MiB by default; an archive may hold more).
MAX_DECODED_BYTES = 64 * 1024 * 1024


class WarcReadError(Exception):
    """A path that is not a readable WARC file or directory (one-line message)."""


@dataclass(frozen=True)
class RecordRef:
    """Where a record lives. ``body`` is set only for files that cannot be read at an offset."""

    path: Path
    offset: int
    body: bytes | None = None


@dataclass(frozen=True)
class ArchivedResponse:
    """The parts of one HTTP ``response`` record that replay needs, without its body."""

    uri: str
    date: datetime  # WARC-Date, timezone-aware UTC
    status: int
    # HTTP headers, names lower-cased, repeated names joined by ", "; describing the decoded body
    # (Content-/Transfer-Encoding removed once undone)
    headers: dict[str, str]
    kind: str | None  # the WARC-Newswire-Kind extension header, None in foreign WARCs
    head: bytes  # first HEAD_BYTES of the (decoded) payload
    ref: RecordRef
    digest: str | None = None  # WARC-Payload-Digest: identical payloads have identical digests

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass
class ScanStats:
    files: int = 0
    records: int = 0  # WARC records read, of any type
    responses: int = 0  # HTTP response records yielded
    malformed: int = 0  # damaged regions, garbage records and truncated records skipped
    problems: list[str] = field(default_factory=list)  # one line per malformed record, capped

    def malformed_record(self, path: Path, offset: int, reason: str) -> None:
        self.malformed += 1
        line = f"{path.name}@{offset}: {reason}"
        if len(self.problems) < 100:
            self.problems.append(line)
        log.warning("warc malformed record skipped file=%s offset=%d reason=%s", path, offset, reason)


def _check_warc(path: Path) -> None:
    """A file named on the command line must start as a WARC does (a record header, gzipped or not):
    a wrong file is the user's mistake, not a WARC with a malformed record to skip."""
    try:
        with path.open("rb") as f:
            start = f.read(64)
            if start.startswith(_GZIP_MAGIC):
                start = zlib.decompressobj(wbits=31).decompress(start + f.read(4096), 5)
    except OSError as exc:
        raise WarcReadError(f"{path}: {exc.strerror or exc}") from None
    except zlib.error:
        raise WarcReadError(f"{path}: not a WARC file (a broken gzip stream)") from None
    if not start.startswith(b"WARC/"):
        raise WarcReadError(f"{path}: not a WARC file" + (" (empty)" if not start else ""))


def warc_files(paths: Iterable[Path]) -> list[Path]:
    """The WARC files named by ``paths`` (files, or directories searched recursively), sorted by
    path within each directory. Raises WarcReadError for a path that does not exist or holds none."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(WARC_SUFFIXES))
            open_files = sorted(path.rglob("*.warc.gz.open"))
            if open_files:
                log.warning("skipping %d WARC file(s) still being written (*.open) in %s", len(open_files), path)
            if not inside:
                raise WarcReadError(f"{path}: no WARC files (*.warc, *.warc.gz) in this directory")
            found.extend(inside)
        elif path.is_file():
            _check_warc(path)
            if path.name.endswith(".open"):  # skipped in a directory; named, it is read, and said so
                log.warning("%s is still being written (or was left by a crash): its complete records are read", path)
            found.append(path)
        else:
            raise WarcReadError(f"{path}: no such file or directory")
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _target_uri(record: WarcRecord) -> str | None:
    uri = record.headers.get("WARC-Target-URI")
    if not uri:
        return None
    # WARC/1.1 drafts wrote the URI in angle brackets; some tools still do.
    return uri.strip().removeprefix("<").removesuffix(">").strip() or None


def _http_headers(record: WarcRecord) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in record.http_headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _iterator(fh: BinaryIO) -> ArchiveIterator:
    # fastwarc's own auto_decode stops iterating after a content-encoded record (FastWARC 2.0.1),
    # so payloads are read raw and decoded by decode_payload (warcio's readers).
    return ArchiveIterator(fh, parse_http=True, auto_decode="none")


def _encoded(headers: dict[str, str]) -> bool:
    encoding = headers.get("content-encoding", "").strip().lower()
    return "chunked" in headers.get("transfer-encoding", "").lower() or encoding not in ("", "identity")


def decode_payload(raw: bytes, headers: dict[str, str]) -> bytes:
    """Undo chunked transfer coding and gzip/deflate/brotli content coding, as a browser would.

    Foreign WARCs often keep payloads as sent. A payload whose coding does not decode is kept as stored
    only when it reads as markup or JSON (the header lied: the server sent it plain); otherwise it is
    empty, so the page counts as failed: compressed bytes must never become an article's text."""
    if not _encoded(headers):
        return raw
    body = raw
    if "chunked" in headers.get("transfer-encoding", "").lower():
        try:
            body = ChunkedDataReader(io.BytesIO(raw)).read()
        except Exception as exc:  # noqa: BLE001 - any framing error: the payload as stored
            log.info("payload de-chunking failed (%s), kept as stored", exc)
    try:
        return decode(body, headers.get("content-encoding"), MAX_DECODED_BYTES)
    except DecodeError as exc:
        if body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"<", b"{", b"["):
            log.info("payload decoding failed (%s), kept as stored: it reads as markup", exc)
            return body
        log.info("payload decoding failed (%s): dropped", exc)
        return b""


def _plain_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in _ENCODING_HEADERS}


def _is_gzip(mm: mmap.mmap | bytes, offset: int = 0) -> bool:
    return mm[offset : offset + 3] == _GZIP_MAGIC


def _complete_gzip_member(mm: mmap.mmap, offset: int) -> bool:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    step = 1 << 20
    position = offset
    try:
        while position < len(mm) and not inflater.eof:
            inflater.decompress(mm[position : position + step], 0)
            position += step
    except zlib.error:
        return False
    return inflater.eof


def _next_start(mm: mmap.mmap, after: int, gzipped: bool) -> int:
    """Offset of the next plausible record start after ``after``, or -1."""
    if gzipped:
        return mm.find(_GZIP_MAGIC, after)
    position = after
    while True:
        found = mm.find(b"WARC/1.", position)
        if found <= 0:
            return found
        if mm[found - 1 : found] == b"\n":
            return found
        position = found + 1


def scan(path: Path, stats: ScanStats, *, head_bytes: int = HEAD_BYTES) -> Iterator[ArchivedResponse]:
    """Every usable HTTP response record of one WARC file, in file order (see the module doc)."""
    stats.files += 1
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in the finally below, the generator may pause
    except OSError as exc:
        raise WarcReadError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        if os.fstat(fh.fileno()).st_size == 0:
            stats.malformed_record(path, 0, "empty file")
            return
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield from _scan_mapped(path, fh, mm, stats, head_bytes)
        finally:
            mm.close()
    finally:
        fh.close()


def _scan_mapped(
    path: Path, fh: BinaryIO, mm: mmap.mmap, stats: ScanStats, head_bytes: int
) -> Iterator[ArchivedResponse]:
    gzipped = _is_gzip(mm)
    indexable = True  # False for a file gzip-compressed as a whole: offsets do not name records
    position = 0
    damaged = False  # inside a damaged region already counted
    pending: ArchivedResponse | None = None  # held back until we know it is not a truncated tail
    tail = -1  # offset of the last record read, of any type
    while position >= 0:
        fh.seek(position)
        last_good = -1
        try:
            for record in _iterator(fh):
                offset = record.stream_pos
                if gzipped and indexable and (offset <= tail or not _is_gzip(mm, offset)):
                    indexable = False
                    log.warning(
                        "warc file=%s is gzip-compressed as a whole, not per record: its bodies are held in memory",
                        path,
                    )
                tail = max(tail, offset)
                last_good = offset
                if record.record_type == WarcRecordType.unknown or not record.headers.get("WARC-Type"):
                    # fastwarc's stand-in for a record whose header could not be read
                    if not damaged:
                        stats.malformed_record(path, offset, "unreadable record header")
                    damaged = True
                    continue
                damaged = False
                stats.records += 1
                item = _response(path, record, offset, indexable, head_bytes, stats)
                if item is not None:
                    if pending is not None:
                        stats.responses += 1
                        yield pending
                    pending = item
            position = -1
        except OSError as exc:
            start = max(last_good, position)
            if not damaged:
                stats.malformed_record(path, start, f"unparseable data ({exc})")
            damaged = True
            position = _next_start(mm, start + 1, gzipped)
    if not damaged and tail >= 0 and _truncated_tail(mm, tail, gzipped, indexable):
        stats.malformed_record(path, tail, "truncated record at the end of the file")
        if pending is not None and pending.ref.offset == tail:
            pending = None
    if pending is not None:
        stats.responses += 1
        yield pending


def _truncated_tail(mm: mmap.mmap, offset: int, gzipped: bool, indexable: bool) -> bool:
    if gzipped:
        return indexable and not _complete_gzip_member(mm, offset)
    return mm[-len(_RECORD_END) :] != _RECORD_END


def _response(
    path: Path, record: WarcRecord, offset: int, indexable: bool, head_bytes: int, stats: ScanStats
) -> ArchivedResponse | None:
    if record.record_type != WarcRecordType.response or not record.is_http:
        return None
    uri = _target_uri(record)
    date = parse_utc(record.headers.get("WARC-Date"))
    status = record.http_headers.status_code if record.http_headers is not None else None
    if uri is None or date is None or not status:
        missing = "WARC-Target-URI" if uri is None else "WARC-Date" if date is None else "HTTP status line"
        stats.malformed_record(path, offset, f"response record without a valid {missing}")
        return None
    headers = _http_headers(record)
    try:
        if indexable and not _encoded(headers):
            head = record.reader.read(head_bytes)
            body = None
        else:
            # Encoded payloads are rare (our archive stores decoded bodies): decode whole to sniff.
            body = decode_payload(record.reader.read(), headers)
            head = body[:head_bytes]
            if indexable:
                body = None
    except OSError as exc:
        stats.malformed_record(path, offset, f"unreadable payload ({exc})")
        return None
    return ArchivedResponse(
        uri=uri,
        date=date,
        status=status,
        headers=_plain_headers(headers),
        kind=record.headers.get(KIND_HEADER),
        head=head,
        ref=RecordRef(path, offset, body),
        digest=record.headers.get("WARC-Payload-Digest") or None,
    )


def read_body(ref: RecordRef) -> bytes:
    """The payload of the record at ``ref`` (decoded). Raises WarcReadError when it cannot be read."""
    if ref.body is not None:
        return ref.body
    try:
        with open(ref.path, "rb") as fh:
            return _read_at(fh, ref)
    except OSError as exc:
        raise WarcReadError(f"{ref.path}@{ref.offset}: cannot read record ({exc})") from None


def _read_at(fh: BinaryIO, ref: RecordRef) -> bytes:
    fh.seek(ref.offset)
    for record in _iterator(fh):
        if record.stream_pos != ref.offset:
            break
        return decode_payload(record.reader.read(), _http_headers(record))
    raise WarcReadError(f"{ref.path}@{ref.offset}: no record at this offset")


class BodyReader:
    """Reads bodies on demand, keeping a few files open (replay reads pages in archive order, so
    consecutive reads usually hit the same file)."""

    def __init__(self, max_open: int = 8) -> None:
        self._open: OrderedDict[Path, BinaryIO] = OrderedDict()
        self._max_open = max_open

    def read(self, ref: RecordRef) -> bytes:
        if ref.body is not None:
            return ref.body
        try:
            return _read_at(self._handle(ref.path), ref)
        except OSError as exc:
            raise WarcReadError(f"{ref.path}@{ref.offset}: cannot read record ({exc})") from None

    def _handle(self, path: Path) -> BinaryIO:
        fh = self._open.pop(path, None)
        if fh is None:
            fh = open(path, "rb")  # noqa: SIM115 - kept open across calls, closed in close()
            while len(self._open) >= self._max_open:
                _, oldest = self._open.popitem(last=False)
                oldest.close()
        self._open[path] = fh
        return fh

    def close(self) -> None:
        for fh in self._open.values():
            fh.close()
        self._open.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- feed or page? ------------------------------------------------------------------------------------

_FEED_TYPES = ("rss", "atom", "rdf+xml", "feed+json")
_XMLISH = ("xml", "json")
_HTML_TYPES = ("text/html", "application/xhtml")
_NOT_DOCUMENTS = ("image/", "video/", "audio/", "font/", "text/css", "javascript", "application/pdf", "zip", "octet")


def classify(kind: str | None, content_type: str | None, head: bytes) -> str | None:
    """``"feed"``, ``"page"``, ``"maybe-feed"`` (try the feed parser, skip quietly if it fails) or
    None (neither: images, scripts, PDFs...). Our own records say what they are; foreign ones are
    judged by their content type and the start of the document."""
    if kind in ("feed", "page"):
        return kind
    mime = (content_type or "").split(";")[0].strip().lower()
    sniffed = sniff(head)
    if any(t in mime for t in _FEED_TYPES):
        return "feed"
    if mime.startswith(_HTML_TYPES):
        return "feed" if sniffed == "feed" else "page"  # a feed served as text/html is still a feed
    if any(t in mime for t in _XMLISH):
        return sniffed or "maybe-feed"
    if not mime or mime.startswith("text/"):
        return sniffed
    if mime.startswith(_NOT_DOCUMENTS) or "/" in mime:
        return None
    return sniffed


def sniff(head: bytes) -> str | None:
    """What the start of a document says it is: "feed", "page" or None."""
    text = head[:HEAD_BYTES].lstrip(b"\xef\xbb\xbf\xff\xfe\x00 \t\r\n").lower()
    if text.startswith(b"\xfe\xff") or b"\x00" in text[:64]:  # UTF-16: drop the zero bytes to look
        text = text.replace(b"\x00", b"")
    if b"<rss" in text or b"<feed" in text or (b"<rdf:rdf" in text and b"purl.org/rss" in text):
        return "feed"
    if text.startswith(b"{") and b"jsonfeed.org" in text:
        return "feed"
    if b"<opml" in text:  # a feed list: its <head> and <body> are not a page's
        return None
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text or b"<head" in text or b"<body" in text:
        return "page"
    return None
