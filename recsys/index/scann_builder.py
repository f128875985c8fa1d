"""`scann_builder`: the ScaNN builder for resolved `ScannIndex` options.

Shared by `ScannIndex` (to build a searcher) and `recsys.index.scann_assets`
(to rebuild the config a saved searcher must match on load).
"""

from typing import Any

import numpy as np

from recsys.index.scann_modules import scann_ops

# ScaNN's defaults, which the saved config (`train=False`) keeps so that
# indexes saved before `train` existed still match it on load.
MIN_PARTITION_SIZE = 50
AH_TRAINING_SAMPLE = 100_000
# Training only (`train=True`): a leaf with fewer sample rows than this is
# re-seeded at each k-means iteration. ScaNN's 50 suits samples of 125+
# rows per leaf; `recsys.index.tuning` samples 50 per leaf (half the
# k-means time at 1M rows), where 50 re-seeded most leaves over and over:
# recall 0.95 on 1M rows (benchmarks/ann.py) then needed ~10x the leaves
# searched. 0.4 of the mean (20 of 50) re-seeds only the near-empty ones.
MIN_PARTITION_SHARE = 0.4
# The 16 centers of each 2-d quantization block are trained on 20,000
# rows: the same recall as on 100,000 (benchmarks/ann.py), ~10% faster.
AH_TRAINING_ROWS = 20_000


def scann_builder(
    embeddings: np.ndarray,
    options: dict[str, Any],
    train: bool = False,
    random_init: bool = False,
) -> Any:
    """The ScaNN builder of `ScannIndex` for resolved `options`.

    Args:
        embeddings: float32 array `(count, dims)`.
        options: dict. Options resolved by
            `recsys.index.scann_index.resolve_options`.
        train: bool. Whether the builder trains a new searcher: its
            training-only settings (the smallest k-means leaf, the
            quantizer's sample) then follow the training sample. Without
            it they are ScaNN's defaults, as in the config that is saved
            and checked on load; a searcher does not depend on them once
            trained. Defaults to False.
        random_init: bool. Whether k-means starts from random rows, as
            ScaNN's default does (and indexes saved before k-means++ did),
            instead of k-means++: random starts are drawn afresh on every
            build, so the same embeddings gave another index each time
            (134 of 200 queries' top 10 differed at 30,000 rows); k-means++
            is seeded and gives the same one. Defaults to False.

    Returns:
        A `scann_ops_pybind` builder; `.build()` trains the searcher and
        `.create_config()` gives its config without training.
    """
    count = len(embeddings)
    min_partition, ah_sample = MIN_PARTITION_SIZE, AH_TRAINING_SAMPLE
    if train:
        per_leaf = min(count, options["training_sample_size"]) / max(
            1, options["num_leaves"]
        )
        min_partition = max(
            1, min(MIN_PARTITION_SIZE, round(MIN_PARTITION_SHARE * per_leaf))
        )
        ah_sample = AH_TRAINING_ROWS
    builder = scann_ops().builder(embeddings, 10, "dot_product")
    builder = builder.tree(
        num_leaves=options["num_leaves"],
        num_leaves_to_search=options["num_leaves_to_search"],
        training_sample_size=options["training_sample_size"],
        min_partition_size=min_partition,
        random_init=random_init,
        # SOAR: each row also goes to a second leaf, chosen to be
        # orthogonal to the first one's residual (ScaNN >= 1.3).
        soar_lambda=options["soar_lambda"] or None,
    ).score_ah(
        options["dimensions_per_block"],
        anisotropic_quantization_threshold=options[
            "anisotropic_quantization_threshold"
        ],
        training_sample_size=ah_sample,
    )
    if options["reorder"]:
        builder = builder.reorder(options["reorder"])
    return builder
