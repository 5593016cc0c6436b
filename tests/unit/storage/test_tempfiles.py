"""Temporary files: bounded inflating into the spool, and the sweep of leftovers (real files, real processes)."""
import io
import os
import subprocess
import sys
import time
import zlib

import pytest

from slicebox.errors import BadRequest, PayloadTooLarge
from slicebox.storage.filesystem import FileSystemStorage
from slicebox.storage.owner import HOST
from slicebox.storage.tempfiles import new_temp_path, spool_inflated, sweep

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "hostile"))
import payloads  # noqa: E402


@pytest.fixture
def storage(tmp_path):
    return FileSystemStorage(str(tmp_path / "storage"))


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def test_spool_inflated_round_trip(storage):
    data = os.urandom(3 << 20) + bytes(5 << 20)
    path = spool_inflated(storage, io.BytesIO(_deflate(data)), max_ratio=100)
    with open(path, "rb") as fh:
        assert fh.read() == data


def test_a_bomb_is_refused_at_the_ratio_and_leaves_nothing(storage):
    with pytest.raises(PayloadTooLarge, match="at most 100 times"):
        spool_inflated(storage, io.BytesIO(payloads.deflate_bomb_stream(1 << 30)), max_ratio=100)
    assert os.listdir(storage.temp_dir()) == []
    with pytest.raises(PayloadTooLarge):
        spool_inflated(storage, io.BytesIO(_deflate(bytes(1 << 20))), max_ratio=1e9, max_size=1000)


@pytest.mark.parametrize("body,message", [
    (_deflate(b"dataset") + b"garbage", "garbage after the end"),
    (_deflate(b"dataset" * 1000)[:-3], "incomplete"),
    (b"not deflate at all", "not raw-deflate"),
])
def test_bad_bodies_are_refused_and_leave_nothing(storage, body, message):
    with pytest.raises(BadRequest, match=message):
        spool_inflated(storage, io.BytesIO(body), max_ratio=100)
    assert os.listdir(storage.temp_dir()) == []


def test_sweep_removes_files_of_dead_processes_and_old_files_only(storage):
    folder = storage.temp_dir()
    mine = new_temp_path(storage)
    # a file made by a process that has exited (a killed worker)
    child = subprocess.run([sys.executable, "-c", "import sys; sys.path[:0] = sys.argv[1:2];"
                            "from slicebox.storage.filesystem import FileSystemStorage;"
                            "from slicebox.storage.tempfiles import new_temp_path;"
                            "print(new_temp_path(FileSystemStorage(sys.argv[2])))",
                            os.getcwd(), os.path.dirname(folder)], capture_output=True, text=True, check=True)
    dead = child.stdout.strip()
    assert os.path.exists(dead)
    # a live process's file (this one's parent, e.g. pytest's runner) and another host's file
    live = os.path.join(folder, f"sb-{HOST}-{os.getppid()}-live.part")
    other = os.path.join(folder, "sb-otherhost-1-x.part")
    legacy = os.path.join(folder, "in-abc.part")
    for p in (live, other, legacy):
        open(p, "wb").close()
    removed = sweep(folder, max_age=3600)
    assert removed == [os.path.basename(dead)]
    assert sorted(os.listdir(folder)) == sorted(os.path.basename(p) for p in (mine, live, other, legacy))
    # untouched for longer than max_age: removed whoever owns it (a live owner that idle is a leak)
    old = time.time() - 7200
    for p in (live, other, legacy):
        os.utime(p, (old, old))
    assert sorted(sweep(folder, max_age=3600)) == sorted(os.path.basename(p) for p in (live, other, legacy))
    assert os.listdir(folder) == [os.path.basename(mine)]


def test_a_reused_pid_does_not_keep_a_leftover(storage):
    folder = storage.temp_dir()
    # the parent is alive, but it started after the file was last written: it cannot own it
    path = os.path.join(folder, f"sb-{HOST}-{os.getppid()}-reused.part")
    open(path, "wb").close()
    with open(f"/proc/{os.getppid()}/stat", "rb") as fh:
        assert fh.read()
    long_ago = 1_000_000_000  # 2001: before the parent started, so the parent cannot have written it
    os.utime(path, (long_ago, long_ago))
    assert sweep(folder, max_age=1e12) == [os.path.basename(path)]
