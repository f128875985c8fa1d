"""`WideBiases`: the wide part of wide & deep, one bias per value."""

from typing import Any

import keras

from recsys.layers.pooled_embedding import PooledEmbedding


@keras.saving.register_keras_serializable(package="recsys")
class WideBiases(keras.layers.Layer):
    """One-number tables, one per categorical column: per-value biases.

    Each column's value looks up its own learned bias (pooled like its
    embedding for multi-valued columns), as the wide part of wide & deep
    and the linear terms of a factorization machine do: added to a rating
    model's output, they are its per-user and per-item biases. The tables
    start at zero.

    Args:
        inputs: list of dict. One embedding input spec per column:
            `{"name", "input_dim", "combiner"}` (other keys are ignored).
        embeddings_regularizer: optional regularizer of every table.
            Defaults to `None`.
        units: int. Biases per value: one per class of a multiclass output
            (one shared bias would add the same to every class's logit,
            which changes no probability). Defaults to `1`.
        **kwargs: Passed on to `keras.layers.Layer`.

    Input shape:
        dict of column name -> `(batch,)` or `(batch, length)` ids.

    Output shape:
        list of `(batch, units)` tensors, one per column, in `inputs`
        order.

    Example:

    ```python
    wide = WideBiases([{"name": "user", "input_dim": 10}])
    biases = wide({"user": np.array([3, 5])})  # [(2, 1) tensor]
    ```
    """

    def __init__(
        self,
        inputs: list[dict[str, Any]],
        embeddings_regularizer: Any = None,
        units: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(
                f"`units` must be a positive integer. Received: units={units}"
            )
        self.units = units
        self.inputs_config = [dict(spec) for spec in inputs]
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self.tables = [
            PooledEmbedding(
                spec["input_dim"],
                units,
                combiner=spec.get("combiner", "mean"),
                embeddings_initializer="zeros",
                embeddings_regularizer=self.embeddings_regularizer,
                dtype=self.dtype_policy,
                name=f"{spec['name']}_bias",
            )
            for spec in self.inputs_config
        ]

    def build(self, input_shape: Any = None) -> None:
        for table in self.tables:
            table.build((None,))
        self.built = True

    def call(self, inputs: dict[str, Any]) -> list[Any]:
        """Looks up each column's biases.

        Args:
            inputs: dict of column name -> ids (extra keys are ignored).

        Returns:
            list of float tensors `(batch, units)`, one per column.
        """
        return [
            table(inputs[spec["name"]])
            for table, spec in zip(self.tables, self.inputs_config, strict=True)
        ]

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "inputs": self.inputs_config,
                "embeddings_regularizer": keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
                "units": self.units,
            }
        )
        return config
