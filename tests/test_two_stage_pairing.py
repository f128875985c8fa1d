"""`check_pairing`: a ranker of another table's ids is refused, by rule.

Stand-ins with the attributes the check reads (no training): the served
pairs of real bundles are in tests/serving/test_ranker_pairing.py.
"""

import numpy as np
import pandas as pd
import pytest

from recsys import two_stage
from recsys.two_stage import check_pairing


class Retriever:
    def __init__(self, item_ids, user_ids, path="artifacts/polls"):
        self.item_ids = np.asarray(item_ids)
        self.user_ids = np.asarray(user_ids)
        self.path = path
        self.config = {
            "data": {"user": "pollster", "item": "state", "source": "p.csv"}
        }


class Ranker:
    """A `TabularBundle`'s id tables and feature names."""

    def __init__(
        self,
        item_ids,
        user_ids,
        features=("user", "item"),
        item_columns=(),
        user_history=None,
        path="artifacts/bl_goals",
    ):
        self.item_column, self.user_column = "item", "user"
        self.items = pd.DataFrame({"item": item_ids})
        for name in item_columns:
            self.items[name] = 0
        self.users = pd.DataFrame({"user": user_ids})
        self.feature_names = list(features)
        self.user_history = user_history
        self.path = path


STATES = [f"state {i}" for i in range(200)]
POLLSTERS = [f"pollster {i}" for i in range(50)]
TEAMS = [f"team {i}" for i in range(18)]


def test_a_ranker_of_another_table_is_refused_naming_both_and_the_fix():
    with pytest.raises(ValueError) as error:
        check_pairing(Retriever(STATES, POLLSTERS), Ranker(TEAMS, TEAMS))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        "Ranker artifacts/bl_goals was trained on another table than "
        "retrieval bundle artifacts/polls: 0 of the bundle's 200 items "
        "('state') are among the ranker's 18 ('item'); 0 of the bundle's 50 "
        "users ('pollster') are among the ranker's 18 ('user')."
    )
    assert "Fix: train the ranker on the same table's ids (p.csv)." in message


def test_each_side_is_refused_alone_with_its_effect():
    with pytest.raises(ValueError, match="every user as one it never") as e:
        check_pairing(Retriever(STATES, POLLSTERS), Ranker(STATES, TEAMS))
    assert "items" not in str(e.value)
    with pytest.raises(
        ValueError, match="candidate as an item it never saw\\."
    ):
        check_pairing(Retriever(STATES, POLLSTERS), Ranker(TEAMS, POLLSTERS))


@pytest.mark.parametrize(
    "known, refused",
    [
        (0, True),
        (1, True),  # 1 of 200: under 1% of the smaller vocabulary
        (2, False),  # 1%
        (200, False),
    ],
)
def test_fewer_shared_ids_than_one_percent_are_refused(known, refused):
    others = [f"team {i}" for i in range(300)]
    ranker = Ranker(STATES[:known] + others, POLLSTERS)
    retriever = Retriever(STATES, POLLSTERS)
    if refused:
        with pytest.raises(ValueError, match=f"{known} of the bundle's 200"):
            check_pairing(retriever, ranker)
    else:
        check_pairing(retriever, ranker)


def test_a_ranker_of_a_few_of_the_catalog_items_is_accepted():
    # A ranker trained on a slice of the table (its 30 users' items): all
    # it knows is in the catalog, however small a share of it.
    catalog = [f"item {i}" for i in range(100_000)]
    check_pairing(
        Retriever(catalog, POLLSTERS), Ranker(catalog[:30], POLLSTERS[:3])
    )


def test_ids_are_compared_as_the_ranker_looks_them_up():
    # Integer ids against the same ids read as floats or text.
    check_pairing(
        Retriever(np.arange(1, 101), np.arange(1, 11)),
        Ranker(np.arange(1.0, 101.0), [str(i) for i in range(1, 11)]),
    )
    with pytest.raises(ValueError, match="0 of the bundle's 100 items"):
        check_pairing(
            Retriever(np.arange(1, 101), np.arange(1, 11)),
            Ranker(np.arange(1, 101) + 1000, np.arange(1, 11)),
        )


def test_a_side_the_ranker_does_not_read_is_not_compared():
    # Item columns only: any users (it scores every user alike anyway).
    check_pairing(
        Retriever(STATES, POLLSTERS),
        Ranker(
            STATES, TEAMS, features=("item", "region"), item_columns=["region"]
        ),
    )
    # A user history makes the user side read, even without user features.
    with pytest.raises(ValueError, match="users"):
        check_pairing(
            Retriever(STATES, POLLSTERS),
            Ranker(STATES, TEAMS, features=("item",), user_history=np.zeros(1)),
        )


def test_nothing_to_compare_is_accepted():
    # Hashed or exact, a ranker keeps its training ids in its tables; a
    # scorer without them (the service's per-request one), or a retriever
    # without users, has nothing to compare.
    class Scorer:
        task = "regression"

        def score_pairs(self, users, items):
            return np.zeros(len(items), np.float32)

    check_pairing(Retriever(STATES, POLLSTERS), Scorer())
    check_pairing(Retriever(STATES, []), Ranker(STATES, TEAMS))


def test_an_accepted_pair_is_not_read_again(monkeypatch):
    retriever, ranker = Retriever(STATES, POLLSTERS), Ranker(STATES, POLLSTERS)
    check_pairing(retriever, ranker)
    calls = []
    monkeypatch.setattr(
        two_stage, "_shared_ids", lambda *a: calls.append(a) or 0
    )
    check_pairing(retriever, ranker)
    assert not calls
    with pytest.raises(ValueError):  # another retriever: read, refused
        check_pairing(Retriever(STATES, POLLSTERS), ranker)
    assert calls


def test_small_whole_number_ids_of_another_source_and_columns_are_refused():
    # A synthetic table's users 0-1999 and items 0-999 against MovieLens'
    # userId 1-671 and movieIds: most ids shared by chance, and accepted.
    retriever = Retriever(np.arange(1000), np.arange(2000), "artifacts/syn")
    retriever.config = {
        "data": {"user": "user_id", "item": "item_id", "source": "shards"}
    }
    ranker = Ranker(np.arange(1, 9067), np.arange(1, 672))
    ranker.config = {
        "data": {"user": "userId", "item": "movieId", "source": "movielens"}
    }
    with pytest.raises(ValueError, match="trained on another table"):
        check_pairing(retriever, ranker)
    # The same source, or the same columns: the ids decide, as before.
    for data in (
        {"user": "userId", "item": "movieId", "source": "shards"},
        {"user": "user_id", "item": "item_id", "source": "movielens"},
    ):
        ranker.config = {"data": data}
        check_pairing(retriever, ranker)
