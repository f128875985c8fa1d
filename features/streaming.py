"""Fitting a `Preprocessor` from batches, in memory bounded by the vocabulary.

`Preprocessor.fit` needs the whole table; `fit_streaming` feeds it batch by
batch to `Preprocessor.partial_fit`, which keeps only per-value counts (and
running moments for numeric columns), so memory grows with the number of
distinct values, never with the rows. It learns exactly what `fit` on the
concatenated batches learns: the same vocabularies in the same order, the
same collision report, and the same numeric statistics up to floating-point
rounding.
"""

from collections.abc import Iterable
from collections.abc import Sequence

from recsys.features.counting import ValueCounter
from recsys.features.preprocessor import Columns
from recsys.features.preprocessor import Preprocessor
from recsys.features.specs import FeatureSpec

__all__ = ["ValueCounter", "fit_streaming"]


def fit_streaming(
    features: Sequence[FeatureSpec], batches: Iterable[Columns]
) -> Preprocessor:
    """Fits a `Preprocessor` on an iterable of batches.

    Args:
        features: list of feature specs (as for `Preprocessor`).
        batches: iterable of pyarrow Tables or RecordBatches (or pandas
            DataFrames) holding every feature's column.

    Returns:
        A fitted `Preprocessor`, equal to `Preprocessor(features=...)
        .fit(all rows)`. It holds only the learned state (the counts are
        freed), as one loaded from JSON does.

    Raises:
        ValueError: if the batches hold no rows, a bucketized feature has
            no fixed boundaries, or a column cannot be fitted (as
            `Preprocessor.fit` raises).

    Example:

    ```python
    batches = (source.read(g, ["userId"]) for g in range(source.num_groups))
    pre = fit_streaming([CategoricalFeature("userId")], batches)
    ```
    """
    pre = Preprocessor(features=features)  # validates the specs
    for feature in pre.features:
        if feature.kind == "bucketized" and feature.boundaries is None:
            # Quantiles need every value: memory would grow with the rows.
            raise ValueError(
                f"Feature '{feature.name}': streamed fitting cannot learn "
                "quantile boundaries. Fix: give the feature fixed "
                "`boundaries`."
            )
    for batch in batches:
        pre.partial_fit(batch)
    if not pre.is_fitted:
        raise ValueError(
            "Cannot fit a Preprocessor on an empty input (0 rows)."
        )
    # Learns (raising on an empty input) and drops the counts of every
    # distinct value before training starts.
    return Preprocessor.from_config(pre.get_config())
