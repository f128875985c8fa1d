"""`model.history = "profile"`: a row's history never holds the row itself
(its label), holds a random half of the user's other rows' items, drawn
again each epoch; a known user's history is all of their items."""

from collections import Counter

import numpy as np
import pandas as pd

from recsys.data.history import profile_items
from recsys.data.history import profiles
from recsys.data.profile_batches import ProfileBatches
from recsys.data.retrieval_inputs import training_inputs
from recsys.data.retrieval_inputs import user_states
from recsys.features import Preprocessor
from recsys.features.specs import CategoricalFeature
from recsys.names import HISTORY


def _rows(seed=0, users=30):
    """Rows grouped by user, 1 to 12 distinct items each, in no order."""
    rng = np.random.default_rng(seed)
    user_ids, item_ids = [], []
    for user in range(users):
        count = int(rng.integers(1, 13))
        user_ids += [user] * count
        item_ids += list(rng.choice(np.arange(1, 40), count, replace=False))
    return np.array(user_ids), np.array(item_ids)


def test_a_row_sees_half_of_its_users_other_items_never_its_own():
    users, items = _rows()
    histories = profile_items(users, items, 20)
    for row, (user, item) in enumerate(zip(users, items, strict=True)):
        held = histories[row][histories[row] > 0]
        others = items[(users == user) & (np.arange(len(items)) != row)]
        assert item not in held  # the label
        assert set(held) <= set(others)
        assert len(set(held)) == len(held)
        # The other half of the user's n rows: n // 2 or (n + 1) // 2.
        n = len(others) + 1
        assert len(held) in (n // 2, (n + 1) // 2)
        # Padding only at the end.
        assert (histories[row][len(held) :] == 0).all()


def test_a_repeated_pair_shows_the_users_other_rows_of_it():
    items = [5, 5, 5, 6, 7, 8]
    held_own = 0
    for seed in range(20):
        histories = profile_items([1] * 6, items, 6, seed=seed)
        for row, item in enumerate(items):
            held = Counter(histories[row][histories[row] > 0].tolist())
            others = Counter(items[:row] + items[row + 1 :])
            assert held <= others  # never the row itself
            held_own += held[item]
    # A user's other rows of item 5 are behaviour, as at serving time: in
    # about half of their histories (the other half of the rows).
    assert held_own > 0.3 * 20 * 3


def test_long_profiles_are_capped_and_the_halves_change_with_the_seed():
    users, items = np.zeros(40, int), np.arange(1, 41)
    first = profile_items(users, items, 5, seed=0)
    assert ((first > 0).sum(axis=1) == 5).all()
    assert not np.array_equal(first, profile_items(users, items, 5, seed=1))
    np.testing.assert_array_equal(first, profile_items(users, items, 5))


def test_a_known_users_profile_is_all_of_their_items():
    users, items = _rows(1)
    ids, histories = profiles(users, items, 12)
    np.testing.assert_array_equal(ids, pd.unique(users))
    for user, history in zip(ids, histories, strict=True):
        assert sorted(history[history > 0]) == sorted(items[users == user])
    _, capped = profiles(users, items, 3)
    assert ((capped > 0).sum(axis=1) == np.minimum(np.bincount(users), 3)).all()


def _prepared(history):
    users, items = _rows(2)
    train = pd.DataFrame({"u": users, "i": items, "t": np.arange(len(users))})
    preprocessor = Preprocessor(
        features=[CategoricalFeature("u"), CategoricalFeature("i")]
    ).fit(train)
    catalog = train.drop_duplicates("i").sort_values("i")
    columns = {"user": "u", "item": "i", "query_features": ["u"]}
    inputs = training_inputs(
        preprocessor,
        train,
        catalog,
        {},
        **columns,
        history_length=6,
        history=history,
    )
    states = user_states(
        preprocessor,
        train,
        catalog,
        **columns,
        history_length=6,
        history=history,
    )
    return preprocessor, train, inputs, states


def test_training_inputs_and_user_states_read_the_profile():
    preprocessor, train, inputs, states = _prepared("profile")
    ids = preprocessor.transform_column("i", train["i"])
    users = train["u"].to_numpy()
    np.testing.assert_array_equal(inputs[HISTORY], profile_items(users, ids, 6))
    np.testing.assert_array_equal(
        states["inputs"][HISTORY], profiles(users, ids, 6)[1]
    )
    # "latest" is unchanged: the default.
    _, _, latest, _ = _prepared("latest")
    assert not np.array_equal(latest[HISTORY], inputs[HISTORY])


def _row_counts(inputs):
    """How many times each row occurs (a user and its sampling weight)."""
    weights = inputs["candidate_sampling_probability"]
    return Counter(zip(inputs["u"], weights, strict=True))


def test_profile_batches_draw_new_histories_each_epoch():
    preprocessor, train, inputs, _ = _prepared("profile")
    ids = preprocessor.transform_column("i", train["i"])
    users = train["u"].to_numpy()
    assert len(users) % 16  # a last, partial batch
    batches = ProfileBatches(inputs, users, ids, 6, batch_size=16, seed=0)
    assert len(batches) == len(users) // 16 + 1

    def epoch():
        rows = [batches[i] for i in range(len(batches))]
        return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}

    first = epoch()
    # Every row once per epoch, the last batch holding the rows left over.
    assert _row_counts(first) == _row_counts(inputs)
    # Each row keeps its own user's history (the user column says whose).
    user_of = dict(zip(inputs["u"], users, strict=True))
    for user, history in zip(first["u"], first[HISTORY], strict=True):
        owned = ids[users == user_of[user]]
        assert set(history[history > 0]) <= set(owned)
    batches.on_epoch_end()
    second = epoch()
    assert not np.array_equal(first[HISTORY], second[HISTORY])
    # A table smaller than a batch is one batch.
    assert len(ProfileBatches(inputs, users, ids, 6, batch_size=10**6)) == 1
