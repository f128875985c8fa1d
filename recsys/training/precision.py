"""Mixed precision for training (`train.mixed_precision`).

`"float16"` and `"bfloat16"` set Keras' `mixed_float16` / `mixed_bfloat16`
dtype policy while the model is built: variables stay float32, lookups and
matrix products run in the half type (on a GPU, at Tensor Core speed and
half the activation memory), and `compile` wraps the optimizer in a
`LossScaleOptimizer` for float16. `TwoTower` computes its softmax loss in
float32. On a CPU, half types are emulated and slower: keep `"off"` there.
"""

import contextlib

import keras

POLICIES = {
    "off": "float32",
    "float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
}


@contextlib.contextmanager
def precision_scope(config):
    """Builds layers under the config's dtype policy, then restores it.

    Args:
        config: dict. A validated config (`train.mixed_precision`).

    Example:

    ```python
    with precision_scope(config):
        model = build_two_tower(preprocessor, config)
    ```
    """
    mode = config["train"].get("mixed_precision", "off")
    if mode not in POLICIES:
        raise ValueError(
            f"train.mixed_precision must be one of {tuple(POLICIES)}. "
            f"Received: {mode!r}"
        )
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[mode])
    try:
        yield POLICIES[mode]
    finally:
        keras.config.set_dtype_policy(previous)
