"""`scann_builder`: the ScaNN builder for resolved `ScannIndex` options.

Shared by `ScannIndex` (to build a searcher) and `recsys.index.scann_assets`
(to rebuild the config a saved searcher must match on load).
"""

from typing import Any

import numpy as np

from recsys.index.scann_modules import scann_ops


def scann_builder(embeddings: np.ndarray, options: dict[str, Any]) -> Any:
    """The ScaNN builder of `ScannIndex` for resolved `options`.

    Args:
        embeddings: float32 array `(count, dims)`.
        options: dict. Options resolved by
            `recsys.index.scann_index.resolve_options`.

    Returns:
        A `scann_ops_pybind` builder; `.build()` trains the searcher and
        `.create_config()` gives its config without training.
    """
    builder = scann_ops().builder(embeddings, 10, "dot_product")
    builder = builder.tree(
        num_leaves=options["num_leaves"],
        num_leaves_to_search=options["num_leaves_to_search"],
        training_sample_size=options["training_sample_size"],
        # SOAR: each row also goes to a second leaf, chosen to be
        # orthogonal to the first one's residual (ScaNN >= 1.3).
        soar_lambda=options["soar_lambda"] or None,
    ).score_ah(
        options["dimensions_per_block"],
        anisotropic_quantization_threshold=options[
            "anisotropic_quantization_threshold"
        ],
    )
    if options["reorder"]:
        builder = builder.reorder(options["reorder"])
    return builder
