"""HTTP content coding (gzip, deflate, brotli) undone with bounded decompressors.

Shared by the fetcher, which decodes bodies from the raw network stream, and the WARC reader, which
decodes payloads that other tools archived as sent. Each decompressor hands out at most ``_PIECE``
bytes per step however dense its input (zlib ``max_length``, brotli ``output_buffer_limit``): httpx's
and warcio's decoders inflate a whole chunk in one call, and one 64 KiB chunk of a gzip bomb becomes
~64 MiB, a brotli one far more. The caller counts what comes out and stops at its cap.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Literal, Protocol

import brotli

_PIECE = 64 * 1024  # largest block a decompressor may hand out at once
_MAX_ENCODINGS = 3  # "gzip, gzip, gzip, ..." a hundred times deep is an attack, not a format


class DecodeError(Exception):
    """A body that does not decode: broken or truncated data, an unknown or too deep coding."""


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


class _ZlibDecoder:
    """gzip or deflate, handing out at most ``_PIECE`` bytes per step however dense the input."""

    def __init__(self, encoding: Literal["gzip", "deflate"]) -> None:
        self._encoding = encoding
        self._head = b""  # deflate: first bytes kept until the zlib header can be recognised
        self._d: zlib._Decompress | None = None
        self._fed = False
        if encoding == "gzip":
            self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def _start_deflate(self, data: bytes) -> bytes:
        # "deflate" is meant to be zlib-wrapped, but servers often send raw deflate: sniff the header.
        self._head += data
        if len(self._head) < 2:
            return b""
        b0, b1 = self._head[0], self._head[1]
        wrapped = (b0 & 0x0F) == 8 and (b0 << 8 | b1) % 31 == 0
        self._d = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        data, self._head = self._head, b""
        return data

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._fed = True
        if self._d is None:
            data = self._start_deflate(data)
            if self._d is None:
                return
        while True:
            d = self._d
            if d.eof:
                # Concatenated gzip members are legal; anything else after the end is ignored.
                rest = d.unused_data + data
                if self._encoding == "gzip" and rest[:2] == b"\x1f\x8b":
                    self._d, data = zlib.decompressobj(zlib.MAX_WBITS | 16), rest
                    continue
                return
            try:
                out = d.decompress(data, _PIECE)
            except zlib.error as exc:
                raise DecodeError(f"broken {self._encoding} data: {exc}") from exc
            if out:
                yield out
            data = d.unconsumed_tail
            # A full piece with no input left means zlib may still hold output: go round again.
            if not d.eof and not data and len(out) < _PIECE:
                return

    def finish(self) -> Iterator[bytes]:
        if not self._fed:
            return
        if self._d is None or not self._d.eof:
            raise DecodeError(f"{self._encoding} body is truncated")
        yield from ()


class _BrotliDecoder:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self._fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data or self._d.is_finished():
            return
        self._fed = True
        try:
            out = self._d.process(data, output_buffer_limit=_PIECE)
            if out:
                yield out
            # The decompressor keeps the rest of the input and may hold output even when it says it
            # can accept more (brotli 1.2): drain with empty input until it gives nothing and is
            # ready for more input (feeding it input before that is an error).
            d = self._d
            while not d.is_finished() and (out or not d.can_accept_more_data()):
                out = d.process(b"", output_buffer_limit=_PIECE)
                if out:
                    yield out
                elif not d.can_accept_more_data():
                    raise DecodeError("br decoder stalled")
        except brotli.error as exc:
            raise DecodeError(f"broken br data: {exc}") from exc

    def finish(self) -> Iterator[bytes]:
        if self._fed and not self._d.is_finished():
            raise DecodeError("br body is truncated")
        yield from ()


def decoders_for(content_encoding: str | None) -> list[_Decoder]:
    """Decoders in the order they must run (the reverse of the order the server applied them)."""
    names = [n.strip().lower() for n in (content_encoding or "").split(",")]
    names = [n for n in names if n and n != "identity"]
    if len(names) > _MAX_ENCODINGS:
        raise DecodeError(f"{len(names)} stacked content-encodings")
    decoders: list[_Decoder] = []
    for name in reversed(names):
        if name in ("gzip", "x-gzip"):
            decoders.append(_ZlibDecoder("gzip"))
        elif name == "deflate":
            decoders.append(_ZlibDecoder("deflate"))
        elif name == "br":
            decoders.append(_BrotliDecoder())
        else:
            raise DecodeError(f"unsupported content-encoding {name!r}")
    return decoders


def through(decoders: Sequence[_Decoder], data: bytes) -> Iterator[bytes]:
    if not decoders:
        yield data
        return
    for piece in decoders[0].feed(data):
        yield from through(decoders[1:], piece)


def finish(decoders: Sequence[_Decoder]) -> Iterator[bytes]:
    for i, decoder in enumerate(decoders):
        for piece in decoder.finish():
            yield from through(decoders[i + 1 :], piece)


def decode(data: bytes, content_encoding: str | None, cap: int) -> bytes:
    """``data`` with its content coding undone; DecodeError when it does not decode or its decoded
    size passes ``cap`` bytes."""
    decoders = decoders_for(content_encoding)
    out = bytearray()
    for piece in _all(decoders, data):
        out += piece
        if len(out) > cap:
            raise DecodeError(f"decoded body exceeds {cap} bytes")
    return bytes(out)


def _all(decoders: Sequence[_Decoder], data: bytes) -> Iterator[bytes]:
    yield from through(decoders, data)
    yield from finish(decoders)
