"""`RankedLists`: each known user's items as a second stage ordered them.

A bundle trained with `model.second_stage` keeps, per known user, the best
unseen items of the second stage (`recsys.second_stage`) with its scores.
The bundle's score of a (user, item) pair is the list's score for an item
on the user's list, else the model's dot product plus the user's offset:
the list's last score, less `GAP`, less the largest dot product the user's
vector can reach (its norm times the catalog's largest item norm). Every
other item therefore scores below the list, whatever the catalog holds
(items added by `recsys index` too), and `Bundle.score`, `Bundle.recommend`
and the service (a known user's list, then the index's answer past it)
order items alike. The offsets are computed from the bundle's checked
vectors, never read from a file.

Stored as three arrays in the bundle (`ranked_indptr.npy`,
`ranked_items.npy`, `ranked_scores.npy`), checked at load like the seen
items.
"""

import functools
import os

import numpy as np

from recsys.storage.files import BundleError

ARRAYS = ("ranked_indptr", "ranked_items", "ranked_scores")
# The best item off a user's list scores at least this much below its last.
GAP = 1.0


class RankedLists:
    """Per known user: catalog rows best first, their scores, an offset.

    Args:
        indptr: int64 array `(num_users + 1,)`. User `r`'s list is
            `items[indptr[r]:indptr[r + 1]]`.
        items: int32 array. Catalog rows.
        scores: float32 array. Their scores, falling within each list.
        user_embeddings, item_embeddings: the bundle's vectors (the
            offsets' bound).

    Attributes:
        offsets: float32 array `(num_users,)`. Added to the model's score
            of every item off the user's list (0 for an empty list).
    """

    def __init__(self, indptr, items, scores, user_embeddings, item_embeddings):
        self.indptr = indptr
        self.items = items
        self.scores = scores
        self._vectors = (user_embeddings, item_embeddings)

    @functools.cached_property
    def offsets(self):
        """Per user: the list's last score, less `GAP`, less the largest
        dot product of the user's vector with an item's (0 for none)."""
        users, items = self._vectors
        # In float64: the bound must hold after float32 dot products.
        reach = np.linalg.norm(users.astype(np.float64), axis=1)
        reach *= np.linalg.norm(items.astype(np.float64), axis=1).max(
            initial=0.0
        )
        ends = np.maximum(self.indptr[1:] - 1, 0)
        last = self.scores[ends] if len(self.scores) else 0.0
        offsets = np.where(np.diff(self.indptr) > 0, last - GAP - reach, 0.0)
        return offsets.astype(np.float32)

    @classmethod
    def from_arrays(cls, arrays):
        """The lists of a bundle's arrays, or None for a bundle without."""
        if not all(name in arrays for name in ARRAYS):
            return None
        return cls(
            arrays["ranked_indptr"],
            arrays["ranked_items"],
            arrays["ranked_scores"],
            arrays["user_embeddings"],
            arrays["item_embeddings"],
        )

    def arrays(self):
        """The stored arrays, by their file names (without `.npy`)."""
        return dict(
            zip(ARRAYS, (self.indptr, self.items, self.scores), strict=True)
        )

    def of(self, row):
        """`(items, scores)` of the user at `row`, best first."""
        start, end = self.indptr[row], self.indptr[row + 1]
        return self.items[start:end], self.scores[start:end]

    def renumbered(self, row_of, user_embeddings, item_embeddings):
        """These lists with catalog rows mapped by `row_of` (new rows), of
        a catalog of these vectors (`Bundle.add_items`)."""
        items = row_of[self.items].astype(np.int32)
        return RankedLists(
            self.indptr, items, self.scores, user_embeddings, item_embeddings
        )

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

        indptr, items, scores = self.indptr, self.items, self.scores
        if indptr.dtype != np.int64 or indptr.shape != (num_users + 1,):
            raise BundleError(
                f"{where('ranked_indptr')} must be int64 of shape "
                f"({num_users + 1},). Received: dtype={indptr.dtype}, "
                f"shape={indptr.shape}. Fix: retrain the bundle."
            )
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
        if not np.isfinite(scores).all():
            raise BundleError(
                f"{where('ranked_scores')} holds NaN or inf values. Fix: "
                "retrain the bundle."
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
