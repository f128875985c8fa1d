"""Batch recommendations: the top-k items of many users, into one Parquet.

`recommend_all` walks a two-tower bundle's users (or a list of users) in
chunks, asks `Bundle.recommend` for each chunk's top k through the index
(or exact search), and appends the chunk's rows to a Parquet file, so memory
stays bounded by one chunk whatever the number of users. The file is
written beside its destination and renamed into place: a failed run never
leaves a partial output. It is what `recsys recommend --all` runs.

The output holds one row per recommended item:

```
<data.user>  rank  <data.item>  score
1            1     318          4.21
1            2     296          4.07
```

`read_users` reads the list of users that `recsys recommend --users FILE`
takes.
"""

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.sources import check_output_file
from recsys.data.sources import header_separator
from recsys.data.sources import index_as_columns
from recsys.data.sources import make_output_folder
from recsys.errors import positive_int
from recsys.logs import progress_bar
from recsys.storage.atomic_write import write_tables_atomically

# Users per Parquet row group: a chunk's `users x k` rows stay small.
DEFAULT_CHUNK = 4096
# Users per call to `Bundle.recommend`. The index fetches `k` plus the
# longest seen list of the call for every user in it, so a chunk is sent
# in groups of users with similar histories (sorted by how many items they
# have seen): one heavy user no longer makes every query in the chunk
# fetch thousands of neighbours (4x the users/s on MovieLens).
GROUP = 256


def _like_bundle_ids(values: pd.Series, ids: np.ndarray) -> np.ndarray:
    """`values` in the dtype of the bundle's `ids` when they all fit it.

    A text file's ids are strings; written as the bundle's integers they
    join back to the training table. Ids that are not all integers stay
    strings (the bundle matches `"42"` and `42` as the same user).
    """
    if ids.dtype.kind in "iu" and values.dtype.kind not in "iu":
        try:
            return (
                pd.to_numeric(values, downcast=None)
                .astype(ids.dtype)
                .to_numpy()
            )
        except (ValueError, TypeError, OverflowError):
            return values.astype(str).to_numpy()
    if values.dtype.kind == "O":
        return values.astype(str).to_numpy()
    return values.to_numpy()


def _check_output(output: str, bundle: Any) -> None:
    """Refuses an output that is a directory, under a file
    (`check_output_file`) or inside the bundle (its files are checked by
    sha256: one written over breaks the bundle), and makes its missing
    folders, before any user is scored."""
    check_output_file(
        output, None, "recommendations.parquet", bundle.path or None
    )
    make_output_folder(output)


def read_users(
    path: str, column: str, like: np.ndarray | None = None
) -> np.ndarray:
    """Reads a list of user ids from a Parquet, CSV or text file.

    A `.parquet` file needs a column named `column` (or a single column). A
    CSV or text file holds one id per line, or a table whose header names
    `column`; `.tsv` files are split on tabs. Empty lines are skipped.

    Args:
        path: str. The file.
        column: str. The user column's name, the bundle's `data.user`.
        like: optional array. The bundle's user ids: ids read as text are
            converted to their dtype when they all fit it.

    Returns:
        1-D numpy array of user ids, in the file's order (repeats kept).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if no column holds the users, or the file holds none.

    Example:

    ```python
    users = read_users("users.txt", "userId", like=bundle.user_ids)
    ```
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Users file not found: {path}")
    if path.lower().endswith(".parquet"):
        # The users may be the file's named index (`set_index(user)`).
        frame = index_as_columns(pd.read_parquet(path))
    else:
        sep = "\t" if path.lower().endswith((".tsv", ".tsv.gz")) else ","
        with contextlib.suppress(ValueError):  # empty: said below
            # A header of `userId;segment` (a spreadsheet's export) was one
            # column, and its ids never matched: the header's separator.
            sep = sep if sep == "\t" else header_separator(path)
        try:
            frame = pd.read_csv(
                path,
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                skip_blank_lines=True,
            )
        except pd.errors.EmptyDataError:  # no line, or blank lines only
            raise ValueError(
                f"Users file {path} holds no user id. Fix: write one id per "
                "line (or a table whose header names the user column)."
            ) from None
        # A header row names the columns; a bare list of ids has none.
        first = (
            [str(name).strip() for name in frame.iloc[0]] if len(frame) else []
        )
        if column in first:
            frame = frame.iloc[1:].set_axis(first, axis=1)
    if column in frame.columns:
        values = frame[column]
    elif frame.shape[1] == 1:
        values = frame.iloc[:, 0]
    else:
        raise ValueError(
            f"The users file {path} has no column {column!r} (the bundle's "
            f"data.user). Received columns: {list(frame.columns)}. Fix: name "
            f"the users column {column!r}, or list one id per line."
        )
    if values.dtype == object:
        values = values.astype(str).str.strip()
        values = values[values != ""]
    values = values.dropna()
    if values.empty:
        raise ValueError(f"The users file {path} lists no users.")
    if like is None:
        return values.to_numpy()
    return _like_bundle_ids(values.reset_index(drop=True), like)


def _chunk_table(
    users: np.ndarray,
    ids: np.ndarray,
    scores: np.ndarray,
    schema: pa.Schema,
) -> pa.Table:
    """The rows of one chunk: `users x k`, padding (score -inf) dropped."""
    k = ids.shape[1]
    keep = np.isfinite(scores).ravel()
    ranks = np.tile(np.arange(1, k + 1, dtype=np.int32), len(users))
    columns = (np.repeat(users, k), ranks, ids.ravel(), scores.ravel())
    return pa.table(
        [pa.array(column[keep]) for column in columns], schema=schema
    )


def _recommend_chunk(
    bundle: Any, users: np.ndarray, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """`bundle.recommend(users, **options)`, in groups of similar histories.

    Returns the same `(ids, scores)`, rows in the order of `users`.
    """
    rows = bundle.user_rows(users)
    seen = np.diff(bundle.seen_indptr)[np.maximum(rows, 0)]
    order = np.argsort(np.where(rows >= 0, seen, 0), kind="stable")
    answers = [
        bundle.recommend(users[order[start : start + GROUP]], **options)
        for start in range(0, len(users), GROUP)
    ]
    back = np.empty_like(order)
    back[order] = np.arange(len(order))  # sorted position of each user
    ids = np.concatenate([found for found, _ in answers])
    scores = np.concatenate([values for _, values in answers])
    return ids[back], scores[back]


def recommend_all(
    bundle: Any,
    output: str,
    *,
    k: int = 10,
    users: Sequence[Any] | np.ndarray | None = None,
    exact: bool = False,
    exclude_seen: bool = True,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> dict[str, Any]:
    """Writes the top-k items of every user of a bundle to a Parquet file.

    Users are recommended `chunk` at a time by `bundle.recommend`, as it
    recommends to each: through the index (or exact search), each user's
    training items excluded, and users the bundle has never seen given the
    most popular items (score: their share of training interactions). Rows
    are `(user, rank, item, score)`, best first, the user and item columns
    named as the bundle's `data.user` and `data.item`. A user left with
    fewer than `k` unseen items gets fewer rows.

    The file is written to a temporary file beside `output` and renamed
    into place once complete: a failure leaves no file (and an existing
    `output` untouched).

    Args:
        bundle: a two-tower `Bundle` (`recsys.load_bundle`).
        output: str. The `.parquet` file to write (replaced if it exists).
        k: int. Items per user, capped at the catalog size. Defaults to
            `10`.
        users: optional list or array of user ids. Defaults to every user
            the bundle was trained on, in the bundle's order.
        exact: bool. Exact search instead of the index. Defaults to
            `False`.
        exclude_seen: bool. Drop each user's training items. Defaults to
            `True`.
        chunk: int. Users written at a time (a Parquet row group); each
            chunk is searched in groups of `GROUP` users with similar
            histories. Defaults to `4096`.
        progress: bool. Show a progress bar on stderr. Defaults to `True`.

    Returns:
        dict with `output` (its absolute path), `users`, `known_users`
        (users the bundle has vectors for), `rows`, `k`, `exact`,
        `seconds` and `users_per_second`.

    Example:

    ```python
    bundle = recsys.load_bundle("artifacts/movielens_two_tower")
    recommend_all(bundle, "recs.parquet", k=20)
    pd.read_parquet("recs.parquet").head()
    ```
    """
    if not hasattr(bundle, "user_embeddings"):
        raise ValueError(
            f"A {type(bundle).__name__} cannot recommend items to users: "
            "batch recommendations need a two-tower bundle (model.kind = "
            '"two_tower").'
        )
    k = positive_int(k, "k")
    chunk = positive_int(chunk, "chunk")
    if not str(output).lower().endswith(".parquet"):
        raise ValueError(
            f"The output file must end in .parquet. Received: {output!r}"
        )
    _check_output(output, bundle)
    users = bundle.user_ids if users is None else np.asarray(users)
    if users.ndim != 1 or len(users) == 0:
        raise ValueError(
            "`users` must be a non-empty 1-D list of user ids. Received: "
            + (f"{len(users)} ids" if users.ndim == 1 else f"{users!r:.80}")
            + ". Fix: pass [user] for one user."
        )
    data = bundle.config["data"]
    schema = pa.schema(
        [
            (data["user"], pa.array(users[:1]).type),
            ("rank", pa.int32()),
            (data["item"], pa.array(bundle.item_ids[:1]).type),
            ("score", pa.float32()),
        ]
    )
    started = time.perf_counter()
    bar = progress_bar(total=len(users), unit="users", disable=not progress)

    def tables():
        for start in range(0, len(users), chunk):
            part = users[start : start + chunk]
            ids, scores = _recommend_chunk(
                bundle, part, k=k, exclude_seen=exclude_seen, exact=exact
            )
            yield _chunk_table(part, ids, scores, schema)
            bar.update(len(part))

    try:
        # Flushed, then renamed: readers see the old file or the whole new
        # one, never a truncated Parquet.
        rows = write_tables_atomically(output, tables(), pq.ParquetWriter)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    return {
        "output": os.path.abspath(output),
        "users": int(len(users)),
        "known_users": int((bundle.user_rows(users) >= 0).sum()),
        "rows": rows,
        "k": min(k, len(bundle.item_ids)),
        "exact": exact,
        "seconds": seconds,
        "users_per_second": len(users) / seconds if seconds > 0 else None,
    }
