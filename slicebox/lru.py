"""A small thread-safe least-recently-used cache bounded by the bytes it holds."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Hashable


class ByteLRU:
    """Maps keys to ``bytes`` values; the oldest-used entries go once ``capacity`` bytes are exceeded.

    A value larger than a quarter of the capacity is not kept (one huge
    rendering must not flush everything else).  ``capacity`` 0 disables it.
    """

    def __init__(self, capacity: int):
        self.capacity = max(0, int(capacity))
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: bytes) -> None:
        if not self.capacity or len(value) > self.capacity // 4:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.capacity and self._items:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)

    def drop(self, predicate) -> None:
        """Remove every entry whose key satisfies ``predicate``."""
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                self._size -= len(self._items.pop(key))

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._items)
