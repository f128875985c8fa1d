"""The per-user temporal split of PROTOCOL.md."""

import numpy as np


def temporal_split(interactions, *, user, item, time):
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


def protocol_split(interactions, *, user, item, time, validation=False):
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
    columns = {"user": user, "item": item, "time": time}
    train, test = temporal_split(interactions, **columns)
    if validation:
        train, test = temporal_split(train, **columns)
    check_split(
        train, test, len(interactions), user=user, carves=1 + validation
    )
    return train, test


def check_split(train, test, total, *, user, carves=1):
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
