"""Input specs of a model's features, read from a fitted `Preprocessor`.

`Tower` and `TabularModel` take their inputs as a list of spec dicts,
`{"name", "type": "embedding", "input_dim", "output_dim", "combiner"}` or
`{"name", "type": "numeric"}`. Both models derive them from the fitted
preprocessor the same way, here: the table's rows from its vocabulary, the
vector's size from the model's setting or the feature's own, and a
multi-hash feature's table options.
"""

from typing import TYPE_CHECKING
from typing import Any

from recsys.layers.sequence_encoder import DEFAULT_SEQUENCE_SCALE
from recsys.names import HISTORY

if TYPE_CHECKING:
    from recsys.features import Preprocessor


def input_specs(
    preprocessor: "Preprocessor",
    names: list[str],
    *,
    output_dim: int | None = None,
) -> list[dict[str, Any]]:
    """The input spec of each feature in `names`, in that order.

    Args:
        preprocessor: a fitted `recsys.features.Preprocessor`.
        names: list of str. Feature names of `preprocessor`.
        output_dim: int or None. Size of every embedding; `None` (or 0)
            gives each feature its own size
            (`preprocessor.embedding_dim(name)`). Defaults to `None`.

    Returns:
        list of dict, one spec per name: `{"name", "type": "numeric"}` for
        a numeric feature (with `"missing": True` where its nulls stay NaN,
        `missing="indicator"`), else an embedding spec with `"input_dim"`,
        `"output_dim"`, `"combiner"` and, for a feature hashed more than
        once, `"num_hashes"`, `"num_buckets"` and `"hash_combiner"`.

    Example:

    ```python
    preprocessor = Preprocessor(features=[CategoricalFeature("user_id")])
    preprocessor.fit(frame)
    input_specs(preprocessor, ["user_id"], output_dim=32)
    # [{"name": "user_id", "type": "embedding", "input_dim": 611,
    #   "output_dim": 32, "combiner": "mean"}]
    ```
    """
    specs = []
    for name in names:
        feature = preprocessor.feature(name)
        if feature.kind == "numeric":
            spec: dict[str, Any] = {"name": name, "type": "numeric"}
            if feature.missing == "indicator":
                # NaN where a value is missing: the model reads a 0/1
                # input beside it.
                spec["missing"] = True
            specs.append(spec)
            continue
        specs.append(
            _embedding_spec(
                preprocessor,
                name,
                name,
                output_dim or preprocessor.embedding_dim(name),
                getattr(feature, "combiner", "mean"),
            )
        )
    return specs


def history_spec(
    preprocessor: "Preprocessor",
    item: str,
    *,
    output_dim: int | None = None,
    encoder: str = "mean",
    length: int | None = None,
) -> dict[str, Any]:
    """The spec of the `HISTORY` input: ids of the item column, encoded.

    The history holds ids of the item column's vocabulary, so its table has
    the item column's rows (and hashing).

    Args:
        preprocessor: a fitted `recsys.features.Preprocessor`.
        item: str. Name of the item column's feature.
        output_dim: int or None. Size of the embedding; `None` (or 0) gives
            the item column's own size. Defaults to `None`.
        encoder: str. `"mean"` averages the items (a `PooledEmbedding`);
            `"gru"` or `"transformer"` reads them in order (a
            `recsys.layers.SequenceEncoder`). Defaults to `"mean"`.
        length: int or None. Ids per history; needed by an ordered
            encoder. Defaults to `None`.

    Returns:
        dict. An embedding spec named `HISTORY` with `combiner="mean"`, plus
        `"encoder"`, `"sequence_length"` and `"sequence_scale"` for an
        ordered encoder (a mean spec is exactly as before, so are the towers
        built from it).
    """
    spec = _embedding_spec(
        preprocessor,
        HISTORY,
        item,
        output_dim or preprocessor.embedding_dim(item),
        "mean",
    )
    if encoder != "mean":
        if not isinstance(length, int) or length < 1:
            raise ValueError(
                f"history encoder {encoder!r} needs the history length. "
                f"Received: length={length!r}"
            )
        # The scale is written into the spec, so a saved tower keeps it if
        # the layer's default changes.
        spec.update(
            encoder=encoder,
            sequence_length=length,
            sequence_scale=DEFAULT_SEQUENCE_SCALE,
        )
    return spec


def _embedding_spec(preprocessor, name, column, output_dim, combiner):
    """An embedding spec named `name` over the table of feature `column`."""
    spec = {
        "name": name,
        "type": "embedding",
        "input_dim": preprocessor.input_dim(column),
        "output_dim": output_dim,
        "combiner": combiner,
    }
    feature = preprocessor.feature(column)
    if getattr(feature, "num_hashes", 1) > 1:
        spec.update(
            num_hashes=feature.num_hashes,
            num_buckets=feature.num_buckets,
            hash_combiner=feature.hash_combiner,
        )
    return spec
