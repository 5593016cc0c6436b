"""The compressed image bodies of the box protocol, both ways, in bounded memory.

Slicebox 2.0 compresses with Akka's ``Compression.deflate``: the **zlib** format
(RFC 1950: a 2-byte header such as ``78 DA``, deflate data, an Adler-32
trailer; java.util.zip ``Deflater(9, nowrap=false)``), with a SYNC_FLUSH after
every chunk so each chunk can be inflated on arrival, and reads with a default
``Inflater()``, which accepts the zlib format only.  Boxes of ours before
issue 10 sent and read **raw deflate** (RFC 1951, no header, no trailer).

We send zlib, flushed per chunk like 2.0 (the level is ours to choose: every
level is the same format), and read both, telling them apart by the header:
a zlib stream starts with CMF/FLG bytes (method 8, window <= 32 KiB, FCHECK a
multiple of 31, no preset dictionary); a raw deflate stream from zlib never
does (its first block header is followed by zero padding or Huffman data that
cannot form that pair: see ``is_zlib_header``).
"""
from __future__ import annotations

import zlib
from typing import BinaryIO, Iterator

ZLIB = "zlib"
RAW = "raw"

#: Largest piece of inflated output produced at a time (memory stays flat
#: whatever the compression ratio of the input, e.g. a deflate bomb).
OUT_CHUNK = 1 << 20
#: Bytes read from the source at a time when compressing; each read is
#: followed by a SYNC_FLUSH, as Akka flushes after each stream element.
IN_CHUNK = 1 << 20


class WireError(ValueError):
    """A body that cannot become an image.

    ``kind`` is ``"incomplete"`` (the stream stops before its end: a transfer
    cut short, worth retrying), ``"corrupt"`` (not zlib or deflate data, or data
    after the end) or ``"too-large"`` (past the size cap).
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.message = message
        self.kind = kind


def is_zlib_header(first: bytes) -> bool:
    """Whether two bytes are a zlib header (RFC 1950 section 2.2) without a preset dictionary.

    For raw deflate the first byte's low 3 bits are BFINAL and BTYPE; a zlib CMF
    byte (method 8) has BTYPE 00 (a stored block) and a set bit 3, where zlib's
    deflate writes zero padding before a stored block's length.  So no raw
    stream written by zlib (all our older boxes used) passes this test.
    """
    if len(first) < 2:
        return False
    cmf, flg = first[0], first[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and ((cmf << 8) | flg) % 31 == 0 and not flg & 0x20


def compress(src: BinaryIO, level: int, fmt: str = ZLIB, chunk: int = IN_CHUNK) -> Iterator[bytes]:
    """Compress a file's bytes as they are read: one flushed piece per ``chunk`` read, then the end.

    ``fmt`` ZLIB (what every box reads today) or RAW (only for our boxes from
    before issue 10, which read nothing else).  Every piece but the last ends
    with a SYNC_FLUSH (``00 00 FF FF``), as Akka's ``Compression.deflate`` does.
    """
    level = min(9, max(0, int(level)))
    wbits = zlib.MAX_WBITS if fmt == ZLIB else -zlib.MAX_WBITS
    deflater = zlib.compressobj(level, zlib.DEFLATED, wbits)
    while True:
        data = src.read(chunk)
        if not data:
            break
        yield deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
    yield deflater.flush(zlib.Z_FINISH)


class Inflater:
    """Inflate zlib or raw deflate (told apart by the first two bytes) with size caps.

    ``max_size`` caps the inflated bytes; ``max_input`` the compressed bytes
    (default: a little over ``max_size``, since deflate never grows data by more
    than a few bytes per 16 KiB, so no endless stream of empty blocks is read).
    """

    #: the ratio limit applies once this many bytes came out (small, highly compressible data is fine)
    RATIO_FLOOR = 16 << 20

    def __init__(self, max_size: int, max_input: int | None = None, max_ratio: float | None = None):
        self.max_size = max_size
        #: inflated / compressed bytes allowed (a decompression bomb stops early, not at max_size)
        self.max_ratio = max_ratio
        self.max_input = max_input if max_input is not None else max_size + max_size // 64 + (1 << 20)
        self.format: str | None = None
        self.size = 0
        self.consumed = 0
        self._head = b""
        self._inflater = None

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Inflated pieces (each at most OUT_CHUNK bytes) for the next compressed bytes."""
        self.consumed += len(data)
        if self.consumed > self.max_input:
            raise WireError(f"compressed body larger than {self.max_input} bytes", "too-large")
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            self.format = ZLIB if is_zlib_header(data[:2]) else RAW
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if self.format == ZLIB else -zlib.MAX_WBITS)
        yield from self._inflate(data)

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        inflater = self._inflater
        while True:
            if inflater.eof:
                if data or inflater.unused_data:
                    raise WireError("data after the end of the compressed stream", "corrupt")
                return
            try:
                out = inflater.decompress(data, OUT_CHUNK)
            except zlib.error as exc:
                raise WireError(f"body is neither zlib nor raw deflate data: {exc}", "corrupt") from None
            self.size += len(out)
            if self.size > self.max_size:
                raise WireError(f"inflated body larger than {self.max_size} bytes", "too-large")
            if self.max_ratio and self.size > self.RATIO_FLOOR and self.size > self.max_ratio * self.consumed:
                raise WireError(f"body inflates past its limit ({self.max_ratio:g} times its "
                                f"compressed size): a decompression bomb", "too-large")
            if out:
                yield out
            data = inflater.unconsumed_tail
            if not data and len(out) < OUT_CHUNK:
                if inflater.eof and inflater.unused_data:
                    raise WireError("data after the end of the compressed stream", "corrupt")
                return

    def finish(self) -> None:
        """The body ended: raise WireError("incomplete") unless the stream did too."""
        if self._inflater is None or not self._inflater.eof:
            raise WireError("compressed body is incomplete (the transfer was cut short)", "incomplete")


def inflate_stream(stream: BinaryIO, out: BinaryIO, max_size: int, chunk: int = IN_CHUNK,
                   max_ratio: float | None = None) -> str:
    """Inflate a whole compressed stream into ``out``; return its format (ZLIB or RAW)."""
    inflater = Inflater(max_size, max_ratio=max_ratio)
    while True:
        data = stream.read(chunk)
        if not data:
            break
        for piece in inflater.feed(data):
            out.write(piece)
    inflater.finish()
    return inflater.format or RAW
