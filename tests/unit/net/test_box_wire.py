"""The box protocol's compressed bodies: zlib as Slicebox 2.0 sends it, raw deflate from our older boxes."""
import io
import os
import tracemalloc
import zlib

import pytest

from slicebox.net import box_wire
from slicebox.net.box_wire import RAW, ZLIB, Inflater, WireError


def akka_deflate(pieces: list[bytes]) -> bytes:
    """What Akka's Compression.deflate emits: Deflater(9, nowrap=false), SYNC_FLUSH after each element."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    return b"".join(c.compress(p) + c.flush(zlib.Z_SYNC_FLUSH) for p in pieces) + c.flush()


def old_raw_deflate(data: bytes, level: int = 1) -> bytes:
    """What our boxes before issue 10 sent."""
    c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def inflate(body: bytes, feed: int = 1 << 16, max_size: int = 1 << 30) -> tuple[bytes, str]:
    out = io.BytesIO()
    fmt = box_wire.inflate_stream(io.BytesIO(body), out, max_size, chunk=feed)
    return out.getvalue(), fmt


DATA = os.urandom(3000) + b"DICM" * 50_000 + os.urandom(1000)


@pytest.mark.parametrize("feed", [1, 2, 3, 7, 65536])
def test_reads_akka_zlib_and_old_raw_deflate_fed_in_any_pieces(feed):
    body = akka_deflate([DATA[:5], DATA[5:70000], DATA[70000:]])
    assert body[:2] == b"\x78\xda" and body[-4:] == zlib.adler32(DATA).to_bytes(4, "big")
    assert inflate(body, feed) == (DATA, ZLIB)
    assert inflate(old_raw_deflate(DATA), feed) == (DATA, RAW)


@pytest.mark.parametrize("level", range(10))
def test_every_level_is_told_apart(level):
    """zlib headers differ per level (78 01, 78 5E, 78 9C, 78 DA); raw streams of every level never look like one."""
    z = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS)
    zbody = z.compress(DATA) + z.flush()
    assert box_wire.is_zlib_header(zbody[:2])
    assert inflate(zbody) == (DATA, ZLIB)
    for data in (DATA, b"", b"x", os.urandom(100)):
        raw = old_raw_deflate(data, level)
        assert not box_wire.is_zlib_header(raw[:2])
        assert inflate(raw) == (data, RAW)


def test_compress_is_zlib_flushed_per_chunk_and_java_inflater_compatible():
    pieces = list(box_wire.compress(io.BytesIO(DATA), level=1, chunk=50_000))
    assert len(pieces) == len(range(0, len(DATA), 50_000)) + 1
    assert pieces[0][:2] == b"\x78\x01"
    for piece in pieces[:-1]:
        assert piece.endswith(b"\x00\x00\xff\xff")  # SYNC_FLUSH: each piece inflates on arrival
    body = b"".join(pieces)
    # a default zlib inflater (java.util.zip.Inflater() reads the same format) takes it whole
    assert zlib.decompress(body) == DATA
    # and every prefix made of whole pieces inflates to a prefix of the data
    d = zlib.decompressobj()
    assert d.decompress(pieces[0]) == DATA[:50_000]
    raw = b"".join(box_wire.compress(io.BytesIO(DATA), level=6, fmt=RAW))
    assert zlib.decompress(raw, -zlib.MAX_WBITS) == DATA


def test_level_9_is_what_akka_sends_for_one_element():
    assert b"".join(box_wire.compress(io.BytesIO(DATA), level=9, chunk=len(DATA))) == akka_deflate([DATA])


def test_empty_source_is_a_valid_empty_stream():
    body = b"".join(box_wire.compress(io.BytesIO(b""), level=1))
    assert zlib.decompress(body) == b""


@pytest.mark.parametrize("make", [akka_deflate, old_raw_deflate], ids=["zlib", "raw"])
def test_cut_short_is_incomplete(make):
    body = make([DATA]) if make is akka_deflate else make(DATA)
    for cut in (0, 1, 2, len(body) // 2, len(body) - 1):
        with pytest.raises(WireError) as exc:
            inflate(body[:cut])
        assert exc.value.kind == "incomplete", cut


def test_not_compressed_and_trailing_data_are_corrupt():
    for body in (b"\xff" * 100, b"\x78\xda" + b"\xff" * 100, akka_deflate([DATA]) + b"junk",
                 old_raw_deflate(DATA) + b"\x00"):
        with pytest.raises(WireError) as exc:
            inflate(body)
        assert exc.value.kind == "corrupt"


def test_a_deflate_bomb_stops_at_the_cap_in_flat_memory():
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    bomb = b"".join(c.compress(bytes(1 << 20)) for _ in range(300)) + c.flush()  # 300 MiB of zeros in ~300 KiB
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(WireError) as exc:
            box_wire.inflate_stream(io.BytesIO(bomb), _Sink(), max_size=100 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc.value.kind == "too-large"
    assert peak < 8 << 20, peak  # a few output chunks, never the inflated whole


def test_endless_empty_blocks_are_capped_on_the_compressed_side():
    inflater = Inflater(max_size=1000)
    head = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS)
    list(inflater.feed(head.compress(b"a") + head.flush(zlib.Z_SYNC_FLUSH)))
    with pytest.raises(WireError) as exc:
        for _ in range(1_000_000):
            list(inflater.feed(head.flush(zlib.Z_SYNC_FLUSH) or b"\x00\x00\x00\xff\xff"))
    assert exc.value.kind == "too-large"


class _Sink:
    def write(self, data: bytes) -> None:
        pass
