"""WARC archive of every fetched document (ISO 28500 via warcio).

* one gzip member per record, so any prefix of complete members is a valid file;
* each record is serialised in memory and appended with a single ``write`` call, so a killed process
  leaves either the whole record or none of it;
* the file being written is named ``*.warc.gz.open`` and renamed to ``*.warc.gz`` when closed or rotated,
  so a reader that globs ``*.warc.gz`` never sees a half-written file; a leftover ``.open`` file from a
  crash is trimmed to its last complete member and renamed on the next start;
* the writer holds an exclusive ``flock`` on its ``.open`` file for as long as it writes it (taken
  before the file has that name), and recovery takes only files it can lock: runs sharing a state dir
  (cron beside a service, a served run's overlapping flow runs) never recover each other's live file;
  a crashed writer's lock went with its process;
* files rotate by size and are named by UTC time of creation.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import queue
import threading
import uuid
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal, Self

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from newswire.records import FetchResult

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024**3
# warcio compresses at level 9; level 6 is ~3x faster on HTML and only a few percent larger
COMPRESS_LEVEL = 6
KIND_HEADER = "WARC-Newswire-Kind"  # extension field: "feed" or "page", so replay needn't sniff our own files
_HOP_BY_HOP = {"content-encoding", "transfer-encoding", "content-length", "connection", "keep-alive"}


def _response(
    uri: str, status: int, headers: list[tuple[str, str]], body: bytes, date: str, kind: Literal["feed", "page"]
) -> bytes:
    """One ``response`` record, serialised (it becomes a gzip member of its own when appended)."""
    # The body is stored decoded, so the stored headers must describe what is stored.
    http_headers = StatusAndHeaders(
        f"{status} {_reason(status)}", [*headers, ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
    )
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=False)
    record = writer.create_warc_record(
        uri, "response", payload=io.BytesIO(body), http_headers=http_headers,
        warc_headers_dict={"WARC-Date": date, KIND_HEADER: kind},
    )
    writer.write_record(record)
    return buf.getvalue()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _gzip_member(data: bytes) -> bytes:
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS + 16)
    return compressor.compress(data) + compressor.flush()


class ArchiveDirError(ValueError):
    """The archive directory cannot be created or written (a user error: --archive-dir)."""


class WarcArchive:
    """Append-only WARC writer rotating by size.

    ``write`` only serialises the record; compressing and appending happen on one background thread
    (zlib releases the GIL), so archiving never stalls the fetching event loop. ``close`` drains it.
    Call ``write`` from one thread at a time.
    """

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, software: str = "newswire") -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.software = software
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ArchiveDirError(f"archive dir {directory}: not a directory") from None
        except OSError as exc:
            raise ArchiveDirError(f"archive dir {directory}: cannot create it: {exc.strerror or exc}") from None
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ArchiveDirError(f"archive dir {directory}: not writable")
        self._fh: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0
        self.records_written = 0
        recover_open_files(directory)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=256)  # bounded: memory stays flat
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def write(self, result: FetchResult, kind: Literal["feed", "page"]) -> None:
        """Archive a successful response (status 2xx with a body), after a body-less ``response``
        record for each redirect that led to it (status and ``Location``), so that a replay finds the
        page from the link a feed gave. Other outcomes live in the fetch log only."""
        if result.status is None or result.not_modified or result.error is not None:
            return
        date = result.fetched_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        records = [_response(hop.url, hop.status, [("Location", hop.location)], b"", date, kind) for hop in result.redirects]
        headers = [(k, v) for k, v in result.headers.items() if k.lower() not in _HOP_BY_HOP]
        records.append(_response(result.final_url, result.status, headers, result.body, date, kind))
        if self._failure is not None:
            raise RuntimeError(f"WARC archive in {self.directory} failed: {self._failure}") from self._failure
        if self._thread is None:
            self._thread = threading.Thread(target=self._drain, name="warc-writer", daemon=True)
            self._thread.start()
        for data in records:
            self._queue.put(data)

    def _drain(self) -> None:
        while (data := self._queue.get()) is not None:
            try:
                self._append(_gzip_member(data))
            except BaseException as exc:  # keep draining so writers never block; report on next write
                log.exception("warc write failed dir=%s", self.directory)
                self._failure = exc

    def _append(self, data: bytes) -> None:
        if self._fh is not None and self._size + len(data) > self.max_bytes and self._size > 0:
            self._close_file()
        if self._fh is None:
            self._open()
        assert self._fh is not None
        self._fh.write(data)
        self._fh.flush()
        self._size += len(data)
        self.records_written += 1

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"newswire-{stamp}-{uuid.uuid4().hex[:8]}.warc.gz.open"
        self._path = self.directory / name
        # locked under a name recovery never looks at, then given its name: no moment when another
        # process's recovery could take (or, being empty, delete) it
        opening = self._path.with_name(name + "ing")
        self._fh = open(opening, "xb", buffering=0)  # noqa: SIM115 - lifetime spans many calls
        fcntl.flock(self._fh, fcntl.LOCK_EX)
        os.replace(opening, self._path)
        self._size = 0
        buf = io.BytesIO()
        writer = WARCWriter(buf, gzip=False)
        info = writer.create_warcinfo_record(name[: -len(".open")], {"software": self.software, "format": "WARC/1.1"})
        writer.write_record(info)
        member = _gzip_member(buf.getvalue())
        self._fh.write(member)
        self._size = len(member)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._close_file()

    def _close_file(self) -> None:
        if self._fh is None or self._path is None:
            return
        final = self._path.with_name(self._path.name[: -len(".open")])
        os.replace(self._path, final)  # still locked: no recovery can take it between the two
        self._fh.close()
        log.debug("warc closed file=%s bytes=%d", final, self._size)
        self._fh = None
        self._path = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def complete_prefix_length(path: Path) -> int:
    """Length of the longest prefix of ``path`` made of complete gzip members."""
    good = 0
    with open(path, "rb") as fh:
        data = fh.read()
    offset = 0
    while offset < len(data):
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            inflater.decompress(data[offset:])
        except zlib.error:
            break
        if not inflater.eof:
            break
        offset = len(data) - len(inflater.unused_data)
        good = offset
    return good


def _locked(path: Path) -> BinaryIO | None:
    """``path`` opened for update with an exclusive lock, or None when a live writer holds it (or it
    went away meanwhile)."""
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    if not path.exists() or os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino:
        fh.close()  # its writer closed and renamed it, or another recovery took it, before the lock
        return None
    return fh


def recover_open_files(directory: Path) -> list[Path]:
    """Trim ``*.warc.gz.open`` files left by a crash to their complete records and close them; files
    a live writer holds (another run on this state dir) are left to it."""
    recovered = []
    for path in sorted([*directory.glob("*.warc.gz.open"), *directory.glob("*.warc.gz.opening")]):
        fh = _locked(path)
        if fh is None:
            continue
        with fh:
            if path.name.endswith(".opening"):  # a crash between creating and naming it: empty
                path.unlink()
                continue
            keep = complete_prefix_length(path)
            if keep == 0:
                path.unlink()
                continue
            fh.truncate(keep)
            final = path.with_name(path.name[: -len(".open")])
            os.replace(path, final)
        log.warning("warc recovered file=%s kept_bytes=%d", final, keep)
        recovered.append(final)
    return recovered
