"""Each row's user's recent *positive* items: a ranking model's history input.

A ranker that knows which movies a user recently liked can compare the
candidate with them (an item-item signal that per-user and per-item weights
cannot express). A row's history holds only positives strictly before it
(and before its time, where times are given: rows of one time are
concurrent, and their order in the table would teach the model a tie
order), so no row sees its own label; a user's latest state, used for rows
after the training data (test rows, serving), holds their last positives.
"""

import numpy as np

from recsys.data.history import run_starts


def positive_history(
    users, items, positive, length, include_current=False, times=None
):
    """Returns each row's `length` previous positive items of its user.

    Args:
        users: 1-D array. Rows grouped by user, time-ordered inside each user
            (as `temporal_split` returns them).
        items: 1-D int array of item ids (`0` means padding).
        positive: 1-D bool array. Which rows count as positives.
        length: int. History length.
        include_current: bool. Count the row itself when it is positive
            (the state *after* the row). Defaults to `False`.
        times: optional 1-D array of the rows' times: a row's history then
            holds only positives of an earlier time (not with
            `include_current`). Defaults to `None`.

    Returns:
        int32 array `(len(items), length)`, most recent first, 0-padded.
    """
    users, items = np.asarray(users), np.asarray(items)
    positive = np.asarray(positive, bool)
    n = len(users)
    out = np.zeros((n, length), np.int32)
    if n == 0:
        return out
    start = run_starts(users)
    through = np.cumsum(positive)  # positives up to and including each row
    seen = through if include_current else through - positive
    if times is not None and not include_current:
        # Each row sees what the first row of its user's time saw.
        seen = seen[run_starts(users, times)]
    # The global index of the user's first positive: positives before the
    # user's first row.
    first = (through - positive)[start]
    positive_items = items[positive]
    for lag in range(1, length + 1):
        index = seen - lag
        valid = index >= first
        out[valid, lag - 1] = positive_items[index[valid]]
    return out


def latest_positive_history(users, items, positive, length):
    """Each user's last `length` positive items.

    Args:
        users, items, positive, length: as in `positive_history`.

    Returns:
        `(unique_users, histories)`: users in order of first appearance and
        an int32 array `(num_users, length)`, most recent first, 0-padded.
    """
    users = np.asarray(users)
    history = positive_history(
        users, items, positive, length, include_current=True
    )
    if len(users) == 0:
        return users, history
    last = np.r_[users[1:] != users[:-1], True]
    return users[last], history[last]
