"""Re-scoring a tabular or text bundle on the split its metrics came from.

`recsys evaluate BUNDLE --rescore` runs this: the evaluation split of the
bundle's config (PROTOCOL.md's, as training made it) goes through the
*loaded* bundle, and the metrics must match the ones training stored in
`metrics.json`. A mismatch means the bundle on disk does not reproduce its
own numbers: the data changed since training, or the saved preprocessor or
model does not behave as the trained one did.
"""

import math

from recsys.data.sources import load_interactions

# Text metrics are stored rounded to 4 decimals, so a re-score may land one
# unit of the last place away; tabular metrics agree to float precision.
DEFAULT_TOLERANCE = 2e-4


def rescore_bundle(bundle, frame=None):
    """The metrics of a loaded bundle on its config's evaluation split.

    Args:
        bundle: a loaded `TabularBundle` or `TextBundle`.
        frame: optional DataFrame of the whole table the bundle was trained
            on; defaults to its config's `data.source`.

    Returns:
        dict: the metrics training stored under the split's name
        (`metrics.json["test"]`, or `["validation"]`), recomputed.

    Raises:
        ValueError: for a bundle of another kind.

    Example:

    ```python
    bundle = load_bundle("artifacts/movielens_liked")
    rescore_bundle(bundle)  # {"auc": 0.7843, "logloss": ..., ...}
    ```
    """
    kind = bundle.manifest.get("kind", "two_tower")
    config = bundle.config
    if frame is None and kind in ("tabular", "text"):
        frame = load_interactions(config["data"]["source"])
    if kind == "tabular":
        from recsys.baselines.tabular import task_metrics
        from recsys.kinds.tabular import row_labels
        from recsys.kinds.tabular import split_rows

        _, test = split_rows(frame, config)
        labels = row_labels(test, config, bundle.classes)
        return task_metrics(bundle.task, labels, bundle.predict(test))
    if kind == "text":
        from recsys.evaluation.classification import classification_metrics
        from recsys.kinds.text import class_ids
        from recsys.kinds.text import split_rows

        _, _, test = split_rows(frame, config)
        data = config["data"]
        return classification_metrics(
            class_ids(bundle, test[data["label"]]),
            bundle.predict_proba(test[data["text"]]),
        )
    raise ValueError(
        f"rescore_bundle reads tabular and text bundles. Received: a {kind!r} "
        "bundle (two-tower bundles are evaluated by `recsys evaluate` "
        "itself)."
    )


def compare_metrics(stored, rescored, tolerance=DEFAULT_TOLERANCE):
    """The metrics that differ between two runs on the same split.

    Args:
        stored: dict. Metrics as training stored them.
        rescored: dict. The same metrics, recomputed.
        tolerance: float. Largest absolute difference that still matches.

    Returns:
        list of `(name, stored, rescored)` for every metric both hold that
        differs by more than `tolerance` (the row count must be equal);
        empty when they match.
    """
    differ = []
    for name, value in rescored.items():
        if name not in stored:
            continue
        limit = 0 if name == "num_examples" else tolerance
        if not math.isclose(stored[name], value, rel_tol=0, abs_tol=limit):
            differ.append((name, stored[name], value))
    return differ
