"""The splits of PROTOCOL.md: per-user temporal, or by the ids' suffixes.

Every kind splits the same way: a held-out test set first, then, from the
training rows, a validation carve (`evaluation_split`). The split that
makes them is per kind: `temporal_split` (each user's latest fifth) for
interactions, `suffix_split` (the id's last characters) for texts.
"""

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd

# A split of a table into `(kept, held)`: `temporal_split`, `suffix_split`.
Splitter = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]


def temporal_split(
    interactions: pd.DataFrame, *, user: str, item: str, time: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits each user's last `ceil(n / 5)` interactions off as a test set.

    Per user, rows are ordered by `(time, item)`; with `n` rows, the last
    `(n + 4) // 5` (integer ceil of `0.2 * n`) go to the second frame. Applied
    to the training part it carves out the validation split.

    Args:
        interactions: pandas DataFrame with the three columns below.
        user: str. User id column.
        item: str. Item id column.
        time: str. Timestamp column.

    Returns:
        `(train, test)` DataFrames, each sorted by `(user, time, item)`.
    """
    missing = [c for c in (user, item, time) if c not in interactions.columns]
    if missing:
        raise KeyError(
            f"Columns {missing} are missing from the interactions. Available "
            f"columns: {list(interactions.columns)}"
        )
    ordered = interactions.sort_values([user, time, item], kind="stable")
    users = ordered[user].to_numpy()
    # Position of each row inside its user's block, and the block sizes.
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(users)])
    position = np.arange(len(users)) - np.repeat(starts, sizes)
    n = np.repeat(sizes, sizes)
    is_test = position >= n - (n + 4) // 5
    return (
        ordered[~is_test].reset_index(drop=True),
        ordered[is_test].reset_index(drop=True),
    )


def suffix_split(
    frame: pd.DataFrame, suffixes: list[str], *, id_column: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits off the rows whose id ends in one of `suffixes`.

    The id is the `id_column` value as text, or the index as text without
    an `id_column`. Both parts keep `frame`'s row order and index.

    Args:
        frame: pandas DataFrame.
        suffixes: list of str. Endings of the ids held out.
        id_column: str. The id column; `""` reads the index. Defaults to
            `""`.

    Returns:
        `(kept, held)` DataFrames: the rows whose id does not end in a
        suffix, and those whose id does.

    Example:

    ```python
    frame = pd.DataFrame({"id": [10, 11, 15, 16]})
    kept, held = suffix_split(frame, ["0", "5"], id_column="id")
    held["id"].tolist()  # [10, 15]
    ```
    """
    if id_column:
        ids = frame[id_column].astype(str)
    else:
        ids = pd.Series(frame.index.astype(str), index=frame.index)
    held = ids.str.endswith(tuple(suffixes)).to_numpy()
    return frame[~held], frame[held]


def evaluation_split(
    frame: pd.DataFrame,
    holdout: Splitter,
    carve: Splitter,
    *,
    validation: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(train, test)`: the test set held out, or the validation carve.

    PROTOCOL.md's split for every kind: `holdout` separates the test rows;
    with `validation`, the training rows are split again by `carve` and its
    held rows are reported instead, so tuning never sees the test rows.

    Args:
        frame: pandas DataFrame. The whole table.
        holdout: callable `frame -> (kept, held)` that holds out the test
            rows (`temporal_split`, `suffix_split`).
        carve: callable `frame -> (kept, held)` that carves the validation
            rows out of the training rows.
        validation: bool. Return the carve: `(train's kept, train's held)`.
            Defaults to `False`.

    Returns:
        `(train, test)` DataFrames.

    Example:

    ```python
    by_suffix = functools.partial(suffix_split, id_column="id")
    train, test = evaluation_split(
        frame,
        functools.partial(by_suffix, suffixes=["0", "5"]),
        functools.partial(by_suffix, suffixes=["1", "6"]),
        validation=True,
    )
    ```
    """
    train, test = holdout(frame)
    if validation:
        train, test = carve(train)
    return train, test


def protocol_split(
    interactions: pd.DataFrame,
    *,
    user: str,
    item: str,
    time: str,
    validation: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(train, test)` of PROTOCOL.md, refusing a split with an empty side.

    Args:
        interactions: pandas DataFrame with the three columns below.
        user: str. User id column.
        item: str. Item id column.
        time: str. Timestamp column.
        validation: bool. Split the training part again and return
            `(its training part, its validation part)`: what
            `evaluate.split = "validation"` reports. Defaults to `False`.

    Returns:
        `(train, test)` DataFrames, as `temporal_split` returns them.

    Raises:
        ValueError: if either part is empty, naming the row counts and the
            fix.
    """
    split = functools.partial(temporal_split, user=user, item=item, time=time)
    train, test = evaluation_split(
        interactions, split, split, validation=validation
    )
    check_split(
        train, test, len(interactions), user=user, carves=1 + validation
    )
    return train, test


def check_split(
    train: pd.DataFrame,
    test: pd.DataFrame,
    total: int,
    *,
    user: str,
    carves: int = 1,
) -> None:
    """Raises a `ValueError` naming the fix if `train` or `test` is empty.

    Args:
        train: DataFrame. The training part.
        test: DataFrame. The held-out part.
        total: int. Rows before the split.
        user: str. The user id column.
        carves: int. Per-user splits applied to reach these parts (2 for
            a validation carve of the training part). Defaults to `1`.
    """
    if len(train) and len(test):
        return
    empty = "training" if not len(train) else "held-out"
    twice = " (twice with a validation carve)" if carves > 1 else ""
    raise ValueError(
        f"The per-user temporal split of {total} rows leaves no {empty} "
        f"rows: each user's latest fifth, at least one row, is held "
        f"out{twice}, so a user needs at least {carves + 1} rows for any to "
        "be trained on. Fix: use a table with more interactions per user."
    )
