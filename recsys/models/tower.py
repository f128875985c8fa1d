"""`Tower`: features in, one embedding vector out."""

from typing import Any

import keras
from keras import ops

from recsys.config.features import table_header
from recsys.layers.multi_hash_embedding import MultiHashEmbedding
from recsys.layers.pooled_embedding import PooledEmbedding
from recsys.layers.sequence_encoder import DEFAULT_SEQUENCE_SCALE
from recsys.layers.sequence_encoder import SequenceEncoder

SUPPORTED_INPUT_TYPES = ("embedding", "numeric")
SUPPORTED_COMBINES = ("sum", "concat")


def check_input_types(specs: list[dict[str, Any]]) -> None:
    """Raises a `ValueError` for an input spec of an unsupported `type`."""
    for spec in specs:
        if spec.get("type") not in SUPPORTED_INPUT_TYPES:
            raise ValueError(
                f"Input '{spec.get('name')}': `type` must be one of "
                f"{SUPPORTED_INPUT_TYPES}. "
                f"Received: type={spec.get('type')!r}"
            )


def _embedding(spec: dict[str, Any], dtype: Any = None) -> keras.layers.Layer:
    """The table of one embedding input: pooled, multi-hash or sequence,
    computing in `dtype` (a dtype policy)."""
    name = f"{spec['name']}_embedding"
    combiner = spec.get("combiner", "mean")
    encoder = spec.get("encoder", "mean")
    if encoder != "mean":
        if spec.get("num_hashes", 1) > 1:
            raise ValueError(
                f"Input '{spec['name']}': encoder {encoder!r} needs a plain "
                "item table, not a multi-hash one. Received: num_hashes="
                f"{spec['num_hashes']}"
            )
        return SequenceEncoder(
            spec["input_dim"],
            spec["output_dim"],
            spec["sequence_length"],
            encoder=encoder,
            sequence_scale=spec.get("sequence_scale", DEFAULT_SEQUENCE_SCALE),
            name=name,
            dtype=dtype,
        )
    if spec.get("num_hashes", 1) > 1:
        return MultiHashEmbedding(
            spec["num_buckets"],
            spec["output_dim"],
            num_hashes=spec["num_hashes"],
            hash_combiner=spec.get("hash_combiner", "sum"),
            combiner=combiner,
            name=name,
            dtype=dtype,
        )
    return PooledEmbedding(
        spec["input_dim"],
        spec["output_dim"],
        combiner=combiner,
        name=name,
        dtype=dtype,
    )


@keras.saving.register_keras_serializable(package="recsys")
class Tower(keras.Model):
    """Embeds each input feature, concatenates, and projects to `output_dim`.

    Categorical features (single- or multi-valued) go through one
    `PooledEmbedding` table each; numeric features enter as they are. The
    concatenation passes through optional hidden `Dense` layers and a final
    linear projection to `output_dim`. A tower with a single embedding
    feature of size `output_dim` and no hidden layers skips the projection:
    it is then exactly a lookup table. With `normalize=True` the output has
    unit L2 norm.

    Args:
        inputs: list of dict. One entry per input feature:
            `{"name", "type": "embedding", "input_dim", "output_dim",
            "combiner"}` or `{"name", "type": "numeric"}`. An embedding
            entry with `"num_hashes"` above 1 (and `"num_buckets"`,
            `"hash_combiner"`) gets a `MultiHashEmbedding` instead, one with
            `"encoder"` (`"gru"` or `"transformer"`), `"sequence_length"`
            and optionally `"sequence_scale"` a `SequenceEncoder` (an
            ordered history).
        output_dim: int. Size of the output vector.
        hidden_units: list of int. Sizes of ReLU hidden layers before the
            projection. Defaults to `()`.
        normalize: bool. Whether to L2-normalize the output. Defaults to
            `True`.
        combine: str. `"concat"` concatenates the feature vectors and
            projects them with a `Dense` layer; `"sum"` adds them, as a
            factorization machine does (every embedding must then have
            `output_dim` and there can be no numeric inputs or hidden
            layers). `"sum"` has no dense weights, so it suits Adagrad on a
            summed loss. Defaults to `"concat"`.

    Input shape:
        dict of feature name -> `(batch,)` or `(batch, length)` tensor.

    Output shape:
        `(batch, output_dim)`.

    Example:

    ```python
    tower = Tower(
        [{"name": "userId", "type": "embedding", "input_dim": 672,
          "output_dim": 32}],
        output_dim=32,
    )
    tower({"userId": np.array([1, 2])})   # shape (2, 32)
    ```
    """

    def __init__(
        self,
        inputs: list[dict[str, Any]],
        output_dim: int,
        hidden_units: list[int] | tuple[int, ...] = (),
        normalize: bool = True,
        combine: str = "concat",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.inputs_config = [dict(spec) for spec in inputs]
        self.output_dim = output_dim
        self.hidden_units = list(hidden_units)
        self.normalize = normalize
        self.combine = combine
        if combine not in SUPPORTED_COMBINES:
            raise ValueError(
                f"`combine` must be one of {SUPPORTED_COMBINES}. "
                f"Received: combine={combine!r}"
            )
        if not self.inputs_config:
            raise ValueError("`inputs` must name at least one feature.")
        if not isinstance(output_dim, int) or output_dim < 1:
            raise ValueError(
                "`output_dim` must be a positive integer. "
                f"Received: output_dim={output_dim}"
            )
        check_input_types(self.inputs_config)
        flagged = [s["name"] for s in self.inputs_config if s.get("missing")]
        if flagged:
            # Their empty cells arrive as NaN, which a tower does not read.
            raise ValueError(
                f"Numeric inputs {flagged} keep missing values as NaN "
                '(missing = "indicator"), which only a tabular model reads. '
                f'Fix: set missing = "mean" in {table_header(flagged[0])} (a '
                "tower fills the training mean)."
            )
        self.feature_names = [spec["name"] for spec in self.inputs_config]
        if combine == "sum":
            wrong = [
                spec["name"]
                for spec in self.inputs_config
                if spec["type"] != "embedding"
                or spec["output_dim"] != output_dim
            ]
            if wrong or self.hidden_units:
                raise ValueError(
                    'combine="sum" needs embedding inputs of size output_dim='
                    f"{output_dim} and no hidden layers. Received: inputs "
                    f"{wrong} of another type or size, hidden_units="
                    f"{self.hidden_units}"
                )
        # Sublayers of the tower's precision: reloaded, they came back
        # under the global policy (float32), and a mixed-precision bundle's
        # towers no longer gave its stored vectors (`recsys index`).
        policy = self.dtype_policy
        self.embeddings = [
            _embedding(spec, policy)
            for spec in self.inputs_config
            if spec["type"] == "embedding"
        ]
        self.concat_dim = sum(
            spec["output_dim"] if spec["type"] == "embedding" else 1
            for spec in self.inputs_config
        )
        self.hidden = [
            keras.layers.Dense(
                units, activation="relu", name=f"hidden_{i}", dtype=policy
            )
            for i, units in enumerate(self.hidden_units)
        ]
        single_table = (
            len(self.inputs_config) == 1
            and self.inputs_config[0]["type"] == "embedding"
            and self.concat_dim == output_dim
        )
        self.projection = (
            None
            if combine == "sum" or (single_table and not self.hidden)
            else keras.layers.Dense(output_dim, name="projection", dtype=policy)
        )
        # Every shape is known from the config, so build now: a reloaded tower
        # then has its weights without a sample input.
        self.build()

    def build(self, input_shape: Any = None) -> None:
        for table in self.embeddings:
            table.build((None,))
        width = self.concat_dim
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        if self.projection is not None:
            self.projection.build((None, width))
        self.built = True

    def call(self, inputs: dict[str, Any]) -> Any:
        """Embeds a batch.

        Args:
            inputs: dict of feature name -> tensor (extra keys are ignored).

        Returns:
            float tensor `(batch, output_dim)`.
        """
        parts = []
        tables = iter(self.embeddings)
        for spec in self.inputs_config:
            if spec["name"] not in inputs:
                raise KeyError(
                    f"Input '{spec['name']}' is missing. Expected inputs: "
                    f"{self.feature_names}"
                )
            value = inputs[spec["name"]]
            if spec["type"] == "embedding":
                parts.append(next(tables)(value))
            else:
                parts.append(
                    ops.expand_dims(ops.cast(value, self.compute_dtype), -1)
                )
        if len(parts) == 1:
            x = parts[0]
        elif self.combine == "sum":
            x = ops.sum(ops.stack(parts, axis=0), axis=0)
        else:
            x = ops.concatenate(parts, axis=-1)
        for layer in self.hidden:
            x = layer(x)
        if self.projection is not None:
            x = self.projection(x)
        if self.normalize:
            x = x / ops.sqrt(
                ops.maximum(
                    ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12
                )
            )
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "inputs": self.inputs_config,
                "output_dim": self.output_dim,
                "hidden_units": self.hidden_units,
                "normalize": self.normalize,
                "combine": self.combine,
            }
        )
        return config
