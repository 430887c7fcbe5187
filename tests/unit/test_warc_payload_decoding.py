"""Payloads other tools archived as sent: transfer and content coding undone as a browser would."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import brotli
import pytest

from newswire.connectors import warc_reader
from newswire.connectors.warc_reader import decode_payload

HTML = b"<html><head><title>Story</title></head><body><p>" + b"Words of the story. " * 200 + b"</p></body></html>"


def _chunked(data: bytes, size: int = 300) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw deflate, as many servers send it
        ("br", brotli.compress),  # was kept compressed: warcio decodes br only with brotlicffi
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
)
@pytest.mark.parametrize("chunked", [False, True])
def test_coded_payloads_decode(coding: str, compress: object, chunked: bool) -> None:
    assert callable(compress)
    payload = compress(HTML)
    headers = {"content-encoding": coding}
    if chunked:
        payload, headers["transfer-encoding"] = _chunked(payload), "chunked"
    assert decode_payload(payload, headers) == HTML


def test_a_payload_that_does_not_decode_is_never_kept_as_compressed_bytes() -> None:
    """Before, brotli bytes (with the chunk sizes) became the text of a published article."""
    broken = brotli.compress(HTML)[:-40]  # truncated
    assert decode_payload(_chunked(broken), {"content-encoding": "br", "transfer-encoding": "chunked"}) == b""
    assert decode_payload(b"\x28\xb5\x2f\xfd" + bytes(50), {"content-encoding": "zstd"}) == b""


def test_a_header_that_lies_keeps_the_plain_markup_as_stored() -> None:
    assert decode_payload(HTML, {"content-encoding": "gzip"}) == HTML
    assert decode_payload(_chunked(HTML), {"content-encoding": "gzip", "transfer-encoding": "chunked"}) == HTML


def test_a_decompression_bomb_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warc_reader, "MAX_DECODED_BYTES", 1 << 20)
    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in ~8 KiB
    assert decode_payload(bomb, {"content-encoding": "gzip"}) == b""


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b'<?xml version="1.0"?><rss version="2.0"><channel>', "feed"),
        (b"<!DOCTYPE html><html><head><title>x</title>", "page"),
        # a feed list (what wget archives beside the site): its <head> and <body> made it a page,
        # and replay dead-lettered it as an article without text
        (b'<?xml version="1.0"?><opml version="2.0"><head><title>f</title></head><body><outline', None),
    ],
)
def test_what_a_document_is_is_told_by_its_start(head: bytes, kind: str | None) -> None:
    assert warc_reader.sniff(head) == kind


def test_an_open_warc_named_directly_is_read_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Inside a directory a *.open file is skipped with a warning; named, it was read without a word."""
    import io

    from warcio.warcwriter import WARCWriter

    path = tmp_path / "newswire-x.warc.gz.open"
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(writer.create_warc_record("http://a.test/", "resource", payload=io.BytesIO(b"x")))
    with caplog.at_level("WARNING", logger="newswire.connectors.warc_reader"):
        assert warc_reader.warc_files([path]) == [path]
    assert any("still being written" in r.getMessage() for r in caplog.records)
