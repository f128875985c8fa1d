import numpy as np

from recsys.data.positive_history import latest_positive_history
from recsys.data.positive_history import positive_history

USERS = np.array([1, 1, 1, 1, 2, 2, 2])
ITEMS = np.array([10, 11, 12, 13, 20, 21, 22])
POSITIVE = np.array([1, 0, 1, 1, 0, 1, 1], bool)


def test_positive_history_sees_only_earlier_positives_of_the_user():
    history = positive_history(USERS, ITEMS, POSITIVE, 2)
    expected = [[0, 0], [10, 0], [10, 0], [12, 10], [0, 0], [0, 0], [21, 0]]
    np.testing.assert_array_equal(history, expected)
    assert history.dtype == np.int32


def test_rows_of_one_time_do_not_see_each_other():
    # User 1's rows 2 and 3 (items 12, 13) share a time, as do user 2's
    # last two: neither sees the other's label; user 2's first time is
    # also user 1's last, which changes nothing across users.
    times = np.array([1, 2, 3, 3, 3, 4, 4])
    history = positive_history(USERS, ITEMS, POSITIVE, 2, times=times)
    expected = [[0, 0], [10, 0], [10, 0], [10, 0], [0, 0], [0, 0], [0, 0]]
    np.testing.assert_array_equal(history, expected)


def test_latest_positive_history_is_the_state_after_the_last_row():
    users, history = latest_positive_history(USERS, ITEMS, POSITIVE, 3)
    np.testing.assert_array_equal(users, [1, 2])
    np.testing.assert_array_equal(history, [[13, 12, 10], [22, 21, 0]])


def test_positive_history_of_nothing():
    assert positive_history([], [], [], 4).shape == (0, 4)
