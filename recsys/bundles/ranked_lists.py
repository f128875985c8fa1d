"""`RankedLists`: each known user's items as a second stage ordered them.

A bundle trained with `model.second_stage` keeps, per known user, the best
unseen items of the second stage (`recsys.second_stage`) with its scores,
and an offset. The bundle's score of a (user, item) pair is then the list's
score for an item on the user's list, else the model's dot product plus the
user's offset, which places every other item below the list: so
`Bundle.score`, `Bundle.recommend` and the service (its known users' answers
read the list, then search the index for what the list does not hold)
order items alike.

Stored as four arrays in the bundle (`ranked_indptr.npy`,
`ranked_items.npy`, `ranked_scores.npy`, `ranked_offsets.npy`), checked
at load like the seen items.
"""

import os

import numpy as np

from recsys.storage.files import BundleError

ARRAYS = ("ranked_indptr", "ranked_items", "ranked_scores", "ranked_offsets")
# The best item off a user's list scores this much below the list's last.
GAP = 1.0
# Users whose dot products with the catalog are computed together.
CHUNK = 1024


class RankedLists:
    """Per known user: catalog rows best first, their scores, an offset.

    Args:
        indptr: int64 array `(num_users + 1,)`. User `r`'s list is
            `items[indptr[r]:indptr[r + 1]]`.
        items: int32 array. Catalog rows.
        scores: float32 array. Their scores, falling within each list.
        offsets: float32 array `(num_users,)`. Added to the model's score
            of every item off the user's list.
    """

    def __init__(self, indptr, items, scores, offsets):
        self.indptr = indptr
        self.items = items
        self.scores = scores
        self.offsets = offsets

    @classmethod
    def with_offsets(
        cls, indptr, items, scores, user_embeddings, item_embeddings
    ):
        """`RankedLists` whose offsets put every other item below the
        list (`GAP` below its last item, the model's best first)."""
        lists = cls(
            indptr, items, scores, np.zeros(len(indptr) - 1, np.float32)
        )
        return lists.reset_offsets(user_embeddings, item_embeddings)

    def reset_offsets(self, user_embeddings, item_embeddings):
        """These lists with offsets recomputed for these vectors (a
        catalog changed by `Bundle.add_items`)."""
        num_users = len(self.indptr) - 1
        offsets = np.zeros(num_users, np.float32)
        lengths = np.diff(self.indptr)
        for start in range(0, num_users, CHUNK):
            users = np.arange(start, min(start + CHUNK, num_users))
            scores = user_embeddings[users] @ item_embeddings.T
            owner = np.repeat(users - start, lengths[users])
            listed = self.items[self.indptr[start] : self.indptr[users[-1] + 1]]
            scores[owner, listed] = -np.inf
            best_rest = scores.max(axis=1)
            has = lengths[users] > 0
            last = self.scores[np.maximum(self.indptr[users + 1] - 1, 0)]
            offsets[users] = np.where(
                has & np.isfinite(best_rest), last - GAP - best_rest, 0.0
            )
        return RankedLists(self.indptr, self.items, self.scores, offsets)

    @classmethod
    def from_arrays(cls, arrays):
        """The lists of a bundle's arrays, or None for a bundle without."""
        if not all(name in arrays for name in ARRAYS):
            return None
        return cls(*(arrays[name] for name in ARRAYS))

    def arrays(self):
        """The four arrays, by their file names (without `.npy`)."""
        return dict(
            zip(
                ARRAYS,
                (self.indptr, self.items, self.scores, self.offsets),
                strict=True,
            )
        )

    def of(self, row):
        """`(items, scores)` of the user at `row`, best first."""
        start, end = self.indptr[row], self.indptr[row + 1]
        return self.items[start:end], self.scores[start:end]

    def renumbered(self, row_of):
        """These lists with catalog rows mapped by `row_of` (new rows)."""
        items = row_of[self.items].astype(np.int32)
        return RankedLists(self.indptr, items, self.scores, self.offsets)

    def apply(self, rows, scores):
        """Turns the model's scores into the bundle's, in place.

        Args:
            rows: int array. Each score row's user row (>= 0).
            scores: float array `(len(rows), num_items)`: the model's.
        """
        scores += self.offsets[rows][:, None]
        lengths = self.indptr[rows + 1] - self.indptr[rows]
        owner = np.repeat(np.arange(len(rows)), lengths)
        at = np.concatenate(
            [np.arange(self.indptr[r], self.indptr[r + 1]) for r in rows]
            or [np.zeros(0, np.int64)]
        )
        scores[owner, self.items[at]] = self.scores[at]

    def check(self, path, num_users, num_items, seen):
        """Raises a `BundleError` unless the arrays describe lists of this
        bundle's users and catalog, of items the users have not seen.

        Args:
            path: the bundle's directory (named in errors).
            num_users, num_items: int. The bundle's users and catalog.
            seen: `(indptr, items)` of the users' training items.
        """

        def where(name):
            return os.path.join(str(path), f"{name}.npy")

        expected = {
            "ranked_indptr": (np.int64, (num_users + 1,)),
            "ranked_offsets": (np.float32, (num_users,)),
        }
        for name, (dtype, shape) in expected.items():
            array = self.arrays()[name]
            if array.dtype != dtype or array.shape != shape:
                raise BundleError(
                    f"{where(name)} must be {np.dtype(dtype)} of shape "
                    f"{shape}. Received: dtype={array.dtype}, "
                    f"shape={array.shape}. Fix: retrain the bundle."
                )
        indptr, items, scores = self.indptr, self.items, self.scores
        if items.dtype != np.int32 or items.ndim != 1:
            raise BundleError(
                f"{where('ranked_items')} must be 1-D int32. Received: "
                f"{items.dtype} {items.shape}"
            )
        if scores.dtype != np.float32 or scores.shape != items.shape:
            raise BundleError(
                f"{where('ranked_scores')} must be float32 of shape "
                f"{items.shape} (one per listed item). Received: "
                f"{scores.dtype} {scores.shape}"
            )
        if (
            indptr[0] != 0
            or indptr[-1] != len(items)
            or (np.diff(indptr) < 0).any()
        ):
            raise BundleError(
                f"{where('ranked_indptr')} must rise from 0 to {len(items)} "
                "(the length of ranked_items.npy) and never fall. Fix: "
                "retrain the bundle."
            )
        if len(items) and (items.min() < 0 or items.max() >= num_items):
            raise BundleError(
                f"{where('ranked_items')} must hold catalog rows in "
                f"[0, {num_items}). Received: [{items.min()}, {items.max()}]"
            )
        if not (np.isfinite(scores).all() and np.isfinite(self.offsets).all()):
            raise BundleError(
                f"{where('ranked_scores')} or {where('ranked_offsets')} "
                "holds NaN or inf values. Fix: retrain the bundle."
            )
        owner = np.repeat(np.arange(num_users), np.diff(indptr))
        # Within a list: no item twice, scores never rising (the order
        # the bundle answers in).
        if len(items):
            same = owner[1:] == owner[:-1]
            if (same & (scores[1:] > scores[:-1])).any():
                raise BundleError(
                    f"{where('ranked_scores')} rises within a user's list "
                    "(each list is best first). Fix: retrain the bundle."
                )
            pairs = np.sort(owner.astype(np.int64) * num_items + items)
            if (np.diff(pairs) == 0).any():
                raise BundleError(
                    f"{where('ranked_items')} lists an item twice for one "
                    "user. Fix: retrain the bundle."
                )
            seen_indptr, seen_items = seen
            seen_owner = np.repeat(np.arange(num_users), np.diff(seen_indptr))
            seen_pairs = seen_owner.astype(np.int64) * num_items + seen_items
            if np.isin(pairs, seen_pairs).any():
                raise BundleError(
                    f"{where('ranked_items')} lists a user's training item "
                    "(the lists hold unseen items: answers that leave seen "
                    "items out would hold them). Fix: retrain the bundle."
                )
