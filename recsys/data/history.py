"""Users' interaction histories as padded id matrices (the query tower's input).

A training row's history holds only items its user interacted with *before*
it, so the model never sees its own label; at serving time a user's history
is their most recent items. Both are built with vectorized numpy (one pass
per history position), never a Python loop over rows.
"""

import numpy as np


def _blocks(users):
    """Start of each row's user block, for rows grouped by user."""
    users = np.asarray(users)
    if len(users) == 0:
        return np.zeros(0, np.int64)
    boundary = np.r_[True, users[1:] != users[:-1]]
    return np.maximum.accumulate(np.where(boundary, np.arange(len(users)), 0))


def previous_items(users, items, length):
    """Returns each row's `length` previous items of the same user.

    Args:
        users: 1-D array. Rows must be grouped by user and ordered by time
            inside each user (as `temporal_split` returns them).
        items: 1-D int array of item ids (`0` must mean padding).
        length: int. History length.

    Returns:
        int32 array `(len(items), length)`, most recent first, 0-padded.
    """
    items = np.asarray(items)
    start = _blocks(users)
    out = np.zeros((len(items), length), np.int32)
    rows = np.arange(len(items))
    for lag in range(1, length + 1):
        source = rows - lag
        valid = source >= start
        out[valid, lag - 1] = items[source[valid]]
    return out


def last_items(users, items, length):
    """Returns each user's `length` most recent items.

    Args:
        users: 1-D array, grouped by user and time-ordered inside each user.
        items: 1-D int array of item ids.
        length: int. History length.

    Returns:
        `(unique_users, histories)`: users in order of first appearance and
        an int32 array `(num_users, length)`, most recent first, 0-padded.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    if len(users) == 0:
        return users[:0], np.zeros((0, length), np.int32)
    last = np.r_[users[1:] != users[:-1], True]
    # The history "after" a user's last row is that row plus its own history.
    extended = previous_items(users, items, length)
    histories = np.concatenate([items[:, None], extended[:, :-1]], axis=1)
    histories = histories[last].astype(np.int32)
    if length == 0:
        histories = histories[:, :0]
    return users[last], histories
