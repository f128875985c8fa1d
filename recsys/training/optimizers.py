"""The optimizers a config can name (`train.optimizer`), built by name.

Every model kind compiles with `make_optimizer`, so the table is the one
place that maps a config's name to a Keras optimizer. The config validates
`train.optimizer` against its supported names before any model is built;
a test keeps those names and `OPTIMIZERS` equal.
"""

import keras

OPTIMIZERS = {
    "adagrad": keras.optimizers.Adagrad,
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
}
# Float32 values each keeps per trained weight, besides the weight (plain
# SGD, as `make_optimizer` builds it, keeps none).
OPTIMIZER_SLOTS = {"adagrad": 1, "adam": 2, "sgd": 0}


def make_optimizer(
    name: str, learning_rate: float
) -> keras.optimizers.Optimizer:
    """A new Keras optimizer of the kind `name`, with its other defaults.

    Args:
        name: str. One of `OPTIMIZERS`: `"adagrad"`, `"adam"` or `"sgd"`.
        learning_rate: float. The optimizer's learning rate.

    Returns:
        A `keras.optimizers.Optimizer`, not yet built.

    Raises:
        ValueError: if `name` is not in `OPTIMIZERS`.

    Example:

    ```python
    model.compile(optimizer=make_optimizer("adagrad", 0.1))
    ```
    """
    if name not in OPTIMIZERS:
        raise ValueError(
            f"`name` must be one of {tuple(OPTIMIZERS)}. Received: "
            f"name={name!r}"
        )
    # `float`: a config keeps `learning_rate = 1` an integer, which Keras
    # refuses.
    return OPTIMIZERS[name](float(learning_rate))
