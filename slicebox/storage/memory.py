"""Images held in a dict; for tests and throw-away boxes."""
from __future__ import annotations

import io
import os
import threading
from typing import BinaryIO

from slicebox.errors import NotFound


class MemoryStorage:
    def __init__(self, data_dir: str):
        self._data: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._tmp = os.path.join(data_dir, "tmp")
        os.makedirs(self._tmp, exist_ok=True)

    def temp_dir(self) -> str:
        return self._tmp

    def put_file(self, image_id: int, path: str) -> None:
        with open(path, "rb") as fh:
            self.write(image_id, fh.read())
        os.unlink(path)

    def write(self, image_id: int, data: bytes) -> None:
        with self._lock:
            self._data[int(image_id)] = bytes(data)

    def open(self, image_id: int) -> BinaryIO:
        with self._lock:
            data = self._data.get(int(image_id))
        if data is None:
            raise NotFound(f"dataset for image {image_id} not found")
        return io.BytesIO(data)

    def path(self, image_id: int) -> str | None:
        return None

    def size(self, image_id: int) -> int:
        with self._lock:
            data = self._data.get(int(image_id))
        if data is None:
            raise NotFound(f"dataset for image {image_id} not found")
        return len(data)

    def exists(self, image_id: int) -> bool:
        return int(image_id) in self._data

    def delete(self, image_id: int) -> None:
        with self._lock:
            self._data.pop(int(image_id), None)

    def check(self) -> None:
        return None

    def ids(self) -> list[int]:
        return list(self._data)
