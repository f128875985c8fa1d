"""`FeatureCache`: the preprocessor's answers for the values requests repeat."""

from typing import Any

import numpy as np

from recsys.bundles.two_tower import whole_number
from recsys.features import canonical_string

# Values kept per cache before it starts over (a bound on its memory: a
# client sending ever new ids cannot grow it without limit).
MAX_ENTRIES = 200_000
# Longest value kept (in characters, as spelled) that is not a catalog id.
# Counting entries alone bounded nothing: 150 requests with unique 1 MB
# history ids added 150 MB. Catalog ids are kept whatever their length
# (the bundle holds each already); any other value only up to this length,
# so what requests add stays under MAX_ENTRIES * (MAX_KEY_CHARS + about
# 300 bytes of entry), about 70 MB per cache. A longer value is
# transformed each time it comes, as on its first time.
MAX_KEY_CHARS = 64


class FeatureCache:
    """Remembers how the bundle's preprocessor transforms single values.

    The preprocessor transforms columns with pandas: about a millisecond per
    call whatever its length, which made a request's 2-3 calls (its user
    id, its history, its exclusions) cost ten times the query tower. Its
    output for one value never changes, so the service asks it once per
    value and keeps the answer: a history's item ids (their catalog rows and
    vocabulary ids) and each scalar query feature. Values that are not
    catalog ids are kept only up to `MAX_KEY_CHARS` characters.

    Args:
        bundle: a loaded `recsys.Bundle`.
        item_column: str. The item id column (`data.item`).
        max_entries: int. Values kept per cache before it is cleared.
        nulls: dict or None. Per feature, the largest id `value` answers
            as `0` (a null): ids whose embedding rows the model never
            trained. Defaults to `None`.

    Example:

    ```python
    cache = FeatureCache(bundle, "movieId")
    rows, ids = cache.items(["1", 260])   # catalog rows, vocabulary ids
    ```
    """

    def __init__(
        self,
        bundle: Any,
        item_column: str,
        max_entries: int = MAX_ENTRIES,
        nulls: dict[str, int] | None = None,
    ) -> None:
        self.bundle = bundle
        self.item_column = item_column
        self.max_entries = max_entries
        self.nulls = dict(nulls or {})
        self._items: dict[Any, tuple[int, int]] = {}
        self._values: dict[Any, np.ndarray] = {}
        ids = bundle.item_ids
        # An int catalog is sorted by id (`Bundle.add_items` keeps it so):
        # an id's row is a binary search, no pandas call.
        self._sorted_ints = (
            ids
            if ids.dtype == np.int64 and bool((ids[1:] > ids[:-1]).all())
            else None
        )
        self._codes_by_row: np.ndarray | None = None

    def prepare(self, chunk: int = 100_000, stop: Any = None) -> None:
        """Transforms every catalog item's id once (a background job).

        Afterwards an item seen for the first time costs a binary search
        and an array read instead of a preprocessor call (those stay for
        ids outside the catalog).

        Args:
            chunk: int. Ids transformed per call.
            stop: `threading.Event` or None; set, it ends the job early.
        """
        ids = self.bundle.item_ids
        codes = np.empty(len(ids), np.int64)
        pre = self.bundle.preprocessor
        for start in range(0, len(ids), chunk):
            if stop is not None and stop.is_set():
                return
            part = ids[start : start + chunk]
            codes[start : start + len(part)] = pre.transform_column(
                self.item_column, part
            )
        self._codes_by_row = codes

    def _rows(self, keys):
        ints = self._sorted_ints
        if ints is None:
            return self.bundle.item_rows(keys)
        values = np.zeros(len(keys), np.int64)
        spelled = np.zeros(len(keys), bool)
        for i, key in enumerate(keys):
            try:
                value = int(key)
            except (TypeError, ValueError):
                continue
            # "042" and "+42" are other ids than 42.
            if str(value) == key and -(2**63) <= value < 2**63:
                values[i], spelled[i] = value, True
        rows = np.minimum(np.searchsorted(ints, values), len(ints) - 1)
        found = spelled & (ints[rows] == values)
        return np.where(found, rows, -1)

    def _as_catalog_spells(self, keys, rows):
        """`keys` as the catalog spells them where `rows` found them, "6.0"
        found as "6" where only that is there (`rows` then given its row,
        in place): one reading with `Bundle.item_rows`, where the
        preprocessor alone read "6.0" as an unknown item."""
        for i in np.flatnonzero(rows < 0):
            whole = whole_number(keys[i]) if isinstance(keys[i], str) else None
            if whole is not None:
                rows[i] = self._rows([whole])[0]
        ids = self.bundle.item_ids
        return [
            canonical_string(ids[row]) if row >= 0 else key
            for key, row in zip(keys, rows, strict=True)
        ]

    def _codes(self, keys, rows):
        table = self._codes_by_row
        pre = self.bundle.preprocessor
        if table is None:
            return pre.transform_column(self.item_column, keys)
        codes = table[np.maximum(rows, 0)]
        outside = np.flatnonzero(rows < 0)
        if len(outside):
            codes[outside] = pre.transform_column(
                self.item_column, [keys[i] for i in outside]
            )
        return codes

    def items(self, ids: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Catalog rows (-1: not in the catalog) and vocabulary ids of items.

        Args:
            ids: list of item ids (str or int), as a request sends them.

        Returns:
            `(rows, vocabulary_ids)`, int64 arrays of `len(ids)`.
        """
        # Keyed by canonical spelling, as the preprocessor and the catalog
        # read ids: "42" and 42 are one item.
        keys = [canonical_string(v) for v in ids]
        cache = self._items
        pairs = {}
        missing = []
        for key in keys:
            hit = cache.get(key)
            if hit is None:
                missing.append(key)
            else:
                pairs[key] = hit
        if missing:
            missing = list(dict.fromkeys(missing))
            rows = self._rows(missing)
            codes = self._codes(self._as_catalog_spells(missing, rows), rows)
            found = dict(
                zip(missing, zip(rows, codes, strict=True), strict=True)
            )
            pairs.update(found)
            kept = {
                key: pair
                for key, pair in found.items()
                if pair[0] >= 0 or len(key or "") <= MAX_KEY_CHARS
            }
            if len(cache) + len(kept) > self.max_entries:
                cache.clear()
            cache.update(kept)
        pairs = [pairs[key] for key in keys]
        rows = np.fromiter((p[0] for p in pairs), np.int64, len(pairs))
        codes = np.fromiter((p[1] for p in pairs), np.int64, len(pairs))
        return rows, codes

    def value(self, name: str, value: Any) -> np.ndarray:
        """`transform_column(name, [value])` (ids up to `nulls[name]` as
        `0`), computed once per value.

        Raises:
            ValueError, TypeError: as the preprocessor does (not cached).
        """
        # The type is part of the key: 1, 1.0 and True are equal in Python
        # but may transform differently.
        key = (name, type(value), value)
        found = self._values.get(key)
        if found is None:
            found = self.bundle.preprocessor.transform_column(name, [value])
            last = self.nulls.get(name)
            if last is not None:
                found = np.where(found <= last, 0, found)
            if len(canonical_string(value) or "") > MAX_KEY_CHARS:
                return found  # not kept: see MAX_KEY_CHARS
            if len(self._values) >= self.max_entries:
                self._values.clear()
            self._values[key] = found
        return found
