"""Byte-bounded bookkeeping for caches that bound entries by count only (e.g. st.cache_data).

One large result can be hundreds of MB, so a count limit alone lets a cache grow
until the machine runs out of memory; `ByteBudget` records each entry's size and
evicts the oldest through the cache's own per-key clear.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class ByteBudget:
    """Sizes of one st.cache_data function's entries, oldest first; evicts past `max_bytes`.

    st.cache_data bounds entries by count only, and one 40-megapixel result is hundreds
    of MB, so entries are also evicted (per key, via `func.clear(*args)`) by bytes.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._sizes: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def admit(self, key: tuple, nbytes: int, clear: Callable[..., None]) -> None:
        """Record a use of `key` (most recent) and evict the oldest entries beyond the budget."""
        with self._lock:
            self._sizes.pop(key, None)
            self._sizes[key] = nbytes
            while self._sizes and self.nbytes > self.max_bytes:
                old, _ = self._sizes.popitem(last=False)
                clear(*old, None)


def nbytes_of(obj) -> int:
    """Bytes held by an array or a result object (its `nbytes`, else its array fields)."""
    n = getattr(obj, "nbytes", None)
    if isinstance(n, int):
        return n
    return sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray))
