"""The ``slicebox import`` client: upload files and folders to a box through an import session.

It speaks only HTTP to the box's API (this box or a remote one), so it imports
nothing of the server: ``POST /api/import/sessions`` once, then one
``POST /api/import/sessions/{id}/images`` per file, streamed from disk, a few
at a time.  A progress bar (tqdm, on stderr) shows files, MB/s and how many
were added, duplicates or rejected; a summary goes to stdout at the end.

Exit status: 0 when every file was stored (new or duplicate), 1 when some
were rejected or failed to upload, 2 when nothing could be done (box
unreachable, wrong credentials, no files).
"""
from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, TextIO

import urllib3
from tqdm import tqdm

EXIT_OK, EXIT_REJECTED, EXIT_FAILED = 0, 1, 2
_CHUNK = 1 << 20
#: rejected files named in the summary (the rest are counted)
_LISTED = 20


class ImportError_(Exception):
    """Nothing can be imported (the box cannot be reached, credentials refused, ...)."""


def collect_files(paths: list[str]) -> list[tuple[str, int]]:
    """(path, size) of every regular file named or found below a named folder, sorted per folder.

    Hidden files and folders below a named folder are skipped (as a directory
    watch skips them); a file named explicitly is always taken.
    """
    found: list[tuple[str, int]] = []
    for given in paths:
        if os.path.isfile(given):
            found.append((given, os.path.getsize(given)))
            continue
        if not os.path.isdir(given):
            raise ImportError_(f"{given}: no such file or directory")
        for folder, dirs, files in os.walk(given):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = os.path.join(folder, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    found.append((path, os.path.getsize(path)))
    return found


class _Reader:
    """A file body that reports the bytes urllib3 read from it."""

    def __init__(self, fh: BinaryIO, on_bytes: Callable[[int], None]):
        self._fh = fh
        self._on_bytes = on_bytes

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(_CHUNK if n is None or n < 0 else n)
        if data:
            self._on_bytes(len(data))
        return data


@dataclass
class Summary:
    files: int = 0
    bytes: int = 0
    added: int = 0
    duplicate: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    session: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_REJECTED if self.rejected or self.failed else EXIT_OK


class Importer:
    """One import run against one box."""

    def __init__(self, url: str, user: str, password: str, session_name: str, parallel: int = 4,
                 progress: bool = True, err: TextIO | None = None):
        self.base = url.rstrip("/")
        if not self.base.endswith("/api"):
            self.base += "/api"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "User-Agent": "slicebox-import"}
        self.session_name = session_name
        self.parallel = max(1, parallel)
        self.progress = progress
        self.err = err or sys.stderr
        self.http = urllib3.PoolManager(maxsize=self.parallel, retries=False,
                                        timeout=urllib3.Timeout(connect=10, read=600))
        self._lock = threading.Lock()

    def _json(self, method: str, path: str, body=None) -> tuple[int, object]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            r = self.http.request(method, self.base + path, body=data, headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise ImportError_(f"cannot reach {self.base}: {exc}") from None
        try:
            parsed = json.loads(r.data) if r.data else None
        except ValueError:
            parsed = r.data[:200].decode("utf-8", "replace")
        return r.status, parsed

    def open_session(self) -> dict:
        status, body = self._json("POST", "/import/sessions", {"name": self.session_name})
        if status == 401:
            raise ImportError_("the box refused the user name or password (401)")
        if status != 201 or not isinstance(body, dict):
            raise ImportError_(f"could not open import session {self.session_name!r}: "
                               f"{status} {_message(body)}")
        return body

    def _upload(self, session_id: int, path: str, size: int, on_bytes: Callable[[int], None]) -> tuple[str, str]:
        """('added' | 'duplicate' | 'rejected' | 'failed', message) for one file."""
        headers = dict(self.headers)
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Length"] = str(size)
        url = f"{self.base}/import/sessions/{session_id}/images"
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            on_bytes(n)

        try:
            with open(path, "rb") as fh:
                r = self.http.request("POST", url, body=_Reader(fh, count), headers=headers,
                                      preload_content=True)
        except OSError as exc:
            on_bytes(max(0, size - sent))
            return "failed", str(exc)
        except urllib3.exceptions.HTTPError as exc:
            on_bytes(max(0, size - sent))
            return "failed", f"upload failed: {exc}"
        on_bytes(max(0, size - sent))
        if r.status == 201:
            return "added", ""
        if r.status == 200:
            return "duplicate", ""
        try:
            message = _message(json.loads(r.data))
        except ValueError:
            message = r.data[:200].decode("utf-8", "replace")
        if r.status == 400:
            return "rejected", message
        return "failed", f"{r.status} {message}"

    def run(self, files: list[tuple[str, int]]) -> Summary:
        summary = Summary(files=len(files), bytes=sum(size for _, size in files))
        session = self.open_session()
        started = time.monotonic()
        bar = tqdm(total=summary.bytes, unit="B", unit_scale=True, unit_divisor=1000, file=self.err,
                   disable=not self.progress, desc=f"0/{len(files)} files", mininterval=0.2,
                   dynamic_ncols=True, ascii=not _is_tty(self.err))
        done = 0

        def on_bytes(n: int) -> None:
            with self._lock:
                bar.update(n)

        def one(item: tuple[str, int]) -> None:
            nonlocal done
            path, size = item
            outcome, message = self._upload(session["id"], path, size, on_bytes)
            with self._lock:
                done += 1
                if outcome == "added":
                    summary.added += 1
                elif outcome == "duplicate":
                    summary.duplicate += 1
                elif outcome == "rejected":
                    summary.rejected.append((path, message))
                else:
                    summary.failed.append((path, message))
                bar.set_description(f"{done}/{len(files)} files", refresh=False)
                bar.set_postfix(added=summary.added, duplicate=summary.duplicate,
                                rejected=len(summary.rejected) + len(summary.failed), refresh=False)

        try:
            with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="import") as pool:
                for _ in pool.map(one, files):
                    pass
        finally:
            bar.close()
        summary.seconds = time.monotonic() - started
        _status, latest = self._json("GET", f"/import/sessions/{session['id']}")
        summary.session = latest if isinstance(latest, dict) else session
        return summary


def _message(body) -> str:
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:200]


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def format_summary(summary: Summary) -> str:
    mb = summary.bytes / 1e6
    rate = mb / summary.seconds if summary.seconds > 0 else 0.0
    session = summary.session
    lines = [
        f"{summary.files} files ({mb:.1f} MB) in {summary.seconds:.1f} s ({rate:.1f} MB/s): "
        f"{summary.added} added, {summary.duplicate} duplicate, {len(summary.rejected)} rejected"
        + (f", {len(summary.failed)} failed" if summary.failed else ""),
        f"import session {session.get('name')!r} (id {session.get('id')}): "
        f"{session.get('filesImported')} imported, {session.get('filesAdded')} added, "
        f"{session.get('filesRejected')} rejected in total",
    ]
    for label, items in (("rejected", summary.rejected), ("failed", summary.failed)):
        for path, message in items[:_LISTED]:
            lines.append(f"  {label}: {path}: {message}")
        if len(items) > _LISTED:
            lines.append(f"  ... and {len(items) - _LISTED} more {label}")
    return "\n".join(lines)
