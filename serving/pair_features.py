"""`PairEncoder`: a tabular ranker's inputs for (user, item) pairs.

`TabularBundle.score_pairs` builds a pandas frame of the pairs' raw columns
(`pair_frame`) and runs the preprocessor over it: for a hundred candidates
that costs more than scoring them. Every column of a pair comes either
from its item's row of the bundle's item table or from its user's row of
the user table, and every feature is transformed row by row from its own
column, so both tables are transformed once, at load, and a pair's inputs
are two row lookups. Ids the tables do not hold are transformed as
`pair_frame` fills them: the id kept, every other column of that side null.
"""

from typing import Any

import numpy as np
import pandas as pd

from recsys.features import canonical_string
from recsys.features import canonical_strings
from recsys.names import HISTORY

# Unknown ids whose inputs `PairEncoder` keeps, per side.
MAX_CACHED_UNKNOWN = 100_000


class IdRows:
    """Rows of a table's ids, for ids in any spelling.

    As `TabularBundle.pair_frame` finds them (by canonical spelling:
    `42` and `"42"` are one id), without spelling every value: integer
    ids are looked up as integers in a table of integer ids, and strings
    are spelled once per distinct value.

    Args:
        ids: pandas Series. The table's id column (unique ids).

    Example:

    ```python
    rows = IdRows(pd.Series([10, 20]))
    rows(np.array(["20", 30], dtype=object))  # array([1, -1])
    ```
    """

    def __init__(self, ids: pd.Series) -> None:
        self.index = pd.Index(canonical_strings(ids))
        self.ints: np.ndarray | None = None
        if ids.dtype.kind == "i" or (
            ids.dtype.kind == "u" and (ids.empty or ids.max() < 2**63)
        ):
            # Sorted, searched with numpy: a pandas lookup of a request's
            # 100 candidates cost 0.1 ms in calls alone.
            ints = ids.to_numpy(np.int64)
            self._order = np.argsort(ints, kind="stable")
            self.ints = ints[self._order]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Row of each value, -1 for an id the table does not hold.

        Args:
            values: 1-D numpy array of ids.

        Returns:
            int array of the same length.
        """
        if values.dtype == object:
            inferred = pd.api.types.infer_dtype(values, skipna=False)
            if inferred == "string":
                codes, uniques = pd.factorize(values)
                found = self.index.get_indexer(canonical_strings(uniques))
                return found[codes]
            if inferred == "integer":
                try:
                    values = values.astype(np.int64)
                except OverflowError:  # spelled below, as ever
                    pass
        if self.ints is not None and (
            values.dtype.kind == "i"
            or (values.dtype.kind == "u" and values.max(initial=0) < 2**63)
        ):
            return self._int_rows(self.ints, values.astype(np.int64))
        return self.index.get_indexer(canonical_strings(values))

    def _int_rows(self, ints: np.ndarray, values: np.ndarray) -> np.ndarray:
        if not len(ints):
            return np.full(len(values), -1, np.int64)
        at = np.minimum(np.searchsorted(ints, values), len(ints) - 1)
        return np.where(ints[at] == values, self._order[at], -1)


class PairEncoder:
    """The model inputs of (user, item) pairs, equal to `TabularBundle`'s.

    `encode(users, items)` returns what `ranker.preprocessor.transform(
    ranker.pair_frame(users, items))` (plus the `HISTORY` input of a model
    with one) returns, from tables transformed at construction.

    Args:
        ranker: a loaded `recsys.bundles.tabular.TabularBundle`.

    Raises:
        ValueError: when a feature's column is in neither table (the
            bundle's own `score_pairs` cannot score it either).

    Example:

    ```python
    encoder = PairEncoder(ranker)
    inputs = encoder.encode(["1", "1"], [31, 1029])
    ranker.model.predict(inputs)
    ```
    """

    def __init__(self, ranker: Any) -> None:
        self.ranker = ranker
        self.preprocessor = ranker.preprocessor
        items, users = ranker.items, ranker.users
        names = [feature.name for feature in self.preprocessor.features]
        self.item_features = [n for n in names if n in items.columns]
        self.user_features = [n for n in names if n not in items.columns]
        missing = [n for n in self.user_features if n not in users.columns]
        if missing:
            raise ValueError(
                f"Features {missing} are in neither the item nor the user "
                "table of the ranker bundle."
            )
        self.user_column = ranker.user_column
        self.item_column = ranker.item_column
        self._user_rows = IdRows(users[self.user_column])
        self._item_rows = IdRows(items[self.item_column])
        self._users = self._transform(users, self.user_features)
        self._items = self._transform(items, self.item_features)
        self._history = ranker.user_history
        # Inputs of ids neither table holds (the retriever's items the
        # ranker never saw, new users), by canonical id: a function of
        # the id alone.
        self._unknown: dict[str, dict] = {
            self.user_column: {},
            self.item_column: {},
        }

    def _transform(self, table, names):
        return {
            name: self.preprocessor.transform_column(name, table[name])
            for name in names
        }

    def encode(self, user_ids: Any, item_ids: Any) -> dict[str, np.ndarray]:
        """The model inputs of pairs.

        Args:
            user_ids, item_ids: 1-D sequences of equal length (any spelling
                of an id: `42` and `"42"` are one id).

        Returns:
            dict of input name -> array with one row per pair.
        """
        user_ids = np.asarray(user_ids, dtype=object)
        item_ids = np.asarray(item_ids)
        if user_ids.shape != item_ids.shape or user_ids.ndim != 1:
            raise ValueError(
                "`user_ids` and `item_ids` must be 1-D and of equal length. "
                f"Received shapes {user_ids.shape} and {item_ids.shape}"
            )
        user_rows = self._user_rows(user_ids)
        item_rows = self._item_rows(item_ids)
        inputs = self._side(
            self._users,
            self.user_features,
            self.user_column,
            user_rows,
            user_ids,
        )
        inputs.update(
            self._side(
                self._items,
                self.item_features,
                self.item_column,
                item_rows,
                item_ids,
            )
        )
        if self._history is not None:
            known = user_rows >= 0
            history = np.zeros(
                (len(user_rows), self._history.shape[1]), np.int32
            )
            history[known] = self._history[user_rows[known]]
            inputs[HISTORY] = history
        return inputs

    def _side(self, encoded, names, id_column, rows, ids):
        """One side's inputs: rows of `encoded`, unknown ids transformed."""
        inputs = {name: encoded[name][np.maximum(rows, 0)] for name in names}
        unknown = np.flatnonzero(rows < 0)
        if unknown.size:
            cache = self._unknown[id_column]
            # One request's few ids: spelled one by one (as
            # `canonical_strings` spells them), not through pandas.
            keys = [canonical_string(v) for v in ids[unknown]]
            new = list(dict.fromkeys(k for k in keys if k not in cache))
            found = self._transform_unknown(names, id_column, new)
            # Bounded: unknown user ids come from requests.
            if new and len(cache) + len(new) <= MAX_CACHED_UNKNOWN:
                cache.update(found)
            known = [found[k] if k in found else cache[k] for k in keys]
            for name in names:
                inputs[name][unknown] = np.stack([row[name] for row in known])
        return inputs

    def _transform_unknown(self, names, id_column, keys):
        """`{key: {name: row}}` of ids no table holds, each transformed as
        `pair_frame` fills it: the id, and nulls elsewhere."""
        if not keys:
            return {}
        nulls = pd.Series([None] * len(keys), dtype=object)
        columns = {
            name: self.preprocessor.transform_column(
                name,
                pd.Series(keys, dtype=object) if name == id_column else nulls,
            )
            for name in names
        }
        return {
            key: {name: columns[name][i] for name in names}
            for i, key in enumerate(keys)
        }
