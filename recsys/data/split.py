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
