"""`TopItemsTable`: known users' best items, searched once at load."""

import logging
import time

import numpy as np

from recsys.index import BruteForceIndex
from recsys.index.base import SEARCH_DEPTH

logger = logging.getLogger(__name__)

# Exact search over the whole catalog costs users x items multiply-adds
# per dimension; above this product the table is not built with it (1M
# items x 100k users would take about 40 minutes on 2 cores).
MAX_EXACT_PRODUCT = 5_000_000_000


class TopItemsTable:
    """The best `depth` items of each known user, seen items excluded.

    A known user's query vector is fixed, and so is the answer to the
    common query (top-k, training items excluded). Searching every such
    user once at load turns that request's index search (0.15–0.2 ms on a
    1M-item catalog) into a row lookup. The most active users (most
    training items) get rows first, up to `max_users`. `lookup` answers only
    what the table answers exactly as the index would: `k <= depth`, seen
    items excluded, and explicit exclusions that leave at least `k` items;
    anything else returns `None` and goes to the index.

    Args:
        bundle: a loaded `recsys.Bundle`.
        index: the index the service searches (the table repeats its
            answers).
        depth: int. Items kept per user, at most `SEARCH_DEPTH` (100).
            Defaults to `100`.
        max_users: int. Users with a row. Defaults to `200_000`
            (`depth=100` then takes 160 MB).
        batch_size: int. Users searched per call while building (small
            enough that a build in a serving process's background thread
            leaves the interpreter to requests between calls).
        stop: `threading.Event` or None. Set, it ends the build early (the
            table is then incomplete: its owner drops it).

    Example:

    ```python
    table = TopItemsTable(bundle, bundle.index, depth=100)
    rows, scores = table.lookup(bundle.user_row(42), k=10)
    ```
    """

    def __init__(
        self,
        bundle,
        index,
        depth=100,
        max_users=200_000,
        batch_size=512,
        stop=None,
    ):
        started = time.perf_counter()
        num_users = len(bundle.user_ids)
        # Up to the index's SEARCH_DEPTH: a row is then the head of what
        # `recommend` answers for any k it serves (`Index.search_rows`).
        self.depth = min(int(depth), SEARCH_DEPTH, len(bundle.item_ids))
        activity = np.diff(bundle.seen_indptr)
        users = np.argsort(-activity, kind="stable")[: max(0, max_users)]
        if (
            isinstance(index, BruteForceIndex)
            and len(users) * len(bundle.item_ids) > MAX_EXACT_PRODUCT
        ):
            users = users[:0]
            logger.warning(
                "Exact search over %d items is too slow to precompute known "
                "users' top items; every request searches.",
                len(bundle.item_ids),
            )
        self.slot = np.full(num_users, -1, np.int64)
        self.slot[users] = np.arange(len(users))
        self.rows = np.empty((len(users), self.depth), np.int32)
        self.scores = np.empty((len(users), self.depth), np.float32)
        for start in range(0, len(users), batch_size):
            if stop is not None and stop.is_set():
                break
            chunk = users[start : start + batch_size]
            rows, scores = index.search_rows(
                bundle.user_embeddings[chunk],
                self.depth,
                exclude=[bundle.seen(user) for user in chunk],
            )
            self.rows[start : start + len(chunk)] = rows
            self.scores[start : start + len(chunk)] = scores
        # A row padded with -1 lists every item the user has not seen.
        self.complete = (self.rows < 0).any(axis=1)
        if len(users):
            logger.info(
                "Precomputed the top %d items of %d users in %.1f s.",
                self.depth,
                len(users),
                time.perf_counter() - started,
            )

    def __len__(self):
        return len(self.rows)

    def lookup(self, user_row, k, banned=None):
        """The top-k rows and scores of a known user, or None.

        Args:
            user_row: int. The user's row in the bundle (>= 0).
            k: int. Items wanted.
            banned: int array of catalog rows to leave out besides the
                user's seen items, or None.

        Returns:
            `(rows, scores)`, best first, or None when the table cannot
            answer exactly (no row for this user, `k > depth`, or too few
            items left after `banned`).
        """
        slot = self.slot[user_row]
        if slot < 0 or k > self.depth:
            return None
        rows, scores = self.rows[slot], self.scores[slot]
        if (banned is None or not len(banned)) and not self.complete[slot]:
            return rows[:k], scores[:k]  # the common case: a plain slice
        keep = rows >= 0
        if banned is not None and len(banned):
            keep &= ~np.isin(rows, banned)
        rows, scores = rows[keep], scores[keep]
        if len(rows) < k and not self.complete[slot]:
            return None
        return rows[:k], scores[:k]
