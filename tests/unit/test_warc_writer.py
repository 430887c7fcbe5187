"""The WARC archive writer: standard readers accept what it writes, also after a crash."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from newswire.connectors.warc_writer import (
    KIND_HEADER,
    WarcArchive,
    complete_prefix_length,
    recover_open_files,
)
from newswire.records import FetchResult

WHEN = datetime(2021, 8, 30, 12, 0, 5, tzinfo=UTC)


def result(i: int, *, status: int = 200, error: str | None = None, size: int = 600) -> FetchResult:
    return FetchResult(
        url=f"http://example.test/{i}?utm_source=x",
        final_url=f"http://example.test/{i}",
        status=status,
        headers={"content-type": "text/html; charset=utf-8", "content-encoding": "gzip", "etag": f'"{i}"'},
        body=(f"<p>page {i}</p>".encode() * size)[:size],
        fetched_at=WHEN,
        error=error,
    )


def records(path: Path) -> list[tuple[str, str | None, dict[str, str], bytes]]:
    out = []
    with open(path, "rb") as fh:
        for record in ArchiveIterator(fh):
            headers = dict(record.http_headers.headers) if record.http_headers else {}
            out.append(
                (record.rec_type, record.rec_headers.get_header("WARC-Target-URI"), headers, record.content_stream().read())
            )
    return out


def test_responses_are_readable_with_decoded_body_and_matching_headers(tmp_path: Path) -> None:
    with WarcArchive(tmp_path) as archive:
        archive.write(result(1), "page")
        archive.write(result(2, status=404, error="http-404"), "page")  # failures live in the fetch log only
        archive.write(result(3, status=304), "feed")
    (path,) = tmp_path.glob("*.warc.gz")
    rows = records(path)
    assert [r[0] for r in rows] == ["warcinfo", "response"]
    _, uri, headers, body = rows[1]
    assert uri == "http://example.test/1"
    assert body == result(1).body
    assert "Content-Encoding" not in headers and "content-encoding" not in headers
    assert headers["Content-Length"] == str(len(body))
    with open(path, "rb") as fh:
        response = list(ArchiveIterator(fh))[1]
        assert response.rec_headers.get_header("WARC-Date") == "2021-08-30T12:00:05Z"
        assert response.rec_headers.get_header(KIND_HEADER) == "page"


def test_files_rotate_by_size_and_every_file_is_complete(tmp_path: Path) -> None:
    with WarcArchive(tmp_path, max_bytes=1500) as archive:
        for i in range(6):
            archive.write(result(i, size=2000), "page")
    files = sorted(tmp_path.glob("*.warc.gz"))
    assert len(files) > 1 and not list(tmp_path.glob("*.open"))
    uris = [r[1] for f in files for r in records(f) if r[0] == "response"]
    assert uris == [f"http://example.test/{i}" for i in range(6)]


def test_a_crash_mid_record_is_trimmed_to_complete_records_on_next_start(tmp_path: Path) -> None:
    archive = WarcArchive(tmp_path)
    for i in range(3):
        archive.write(result(i), "page")
    archive._queue.put(None)  # drain the writer thread without closing the file: the process "dies" here
    assert archive._thread is not None
    archive._thread.join()
    assert archive._fh is not None
    archive._fh.close()  # as the dying process's descriptors are, which lets go of its lock
    (open_file,) = tmp_path.glob("*.warc.gz.open")
    whole = open_file.stat().st_size
    with open(open_file, "ab") as fh:
        fh.write(b"\x1f\x8b\x08\x00half a gzip member")  # the record being appended when the power went
    assert complete_prefix_length(open_file) == whole

    recovered = recover_open_files(tmp_path)
    assert [p.name for p in recovered] == [open_file.name.removesuffix(".open")]
    assert [r[1] for r in records(recovered[0]) if r[0] == "response"] == [f"http://example.test/{i}" for i in range(3)]


def test_an_open_file_with_no_complete_record_is_removed(tmp_path: Path) -> None:
    junk = tmp_path / "newswire-x.warc.gz.open"
    junk.write_bytes(b"\x1f\x8b\x08garbage")
    assert recover_open_files(tmp_path) == []
    assert not junk.exists()


def test_a_file_another_run_is_writing_is_not_recovered_from_under_it(tmp_path: Path) -> None:
    """Runs sharing a state dir (cron beside a service, a served run's overlapping flow runs): each
    start "recovered" the other's live file, renamed it away, and the writer died at its close
    (FileNotFoundError, exit 70); one with no complete record yet was deleted."""
    live = WarcArchive(tmp_path)
    live.write(result(0), "page")
    deadline = time.monotonic() + 10  # the writer thread opens the file with its first record
    while not list(tmp_path.glob("*.warc.gz.open")) and time.monotonic() < deadline:
        time.sleep(0.01)
    (open_file,) = tmp_path.glob("*.warc.gz.open")
    other = WarcArchive(tmp_path)  # the second run's start recovers what it finds
    assert open_file.exists() and not list(tmp_path.glob("*.warc.gz"))
    other.write(result(1), "page")
    other.close()
    live.write(result(2), "page")
    live.close()
    closed = sorted(tmp_path.glob("*.warc.gz"))
    assert len(closed) == 2 and not list(tmp_path.glob("*.open*"))
    uris = sorted(r[1] for path in closed for r in records(path) if r[0] == "response")
    assert uris == [f"http://example.test/{i}" for i in range(3)]
