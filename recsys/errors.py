"""`ConfigError`: the error of a malformed config, shared by every kind's
config module (so that `recsys.config` and the kinds' checks need not
import each other); `positive_int`, the check of a count argument."""

from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A config file or override is malformed."""


def positive_int(value: Any, name: str) -> int:
    """`value` as an int, checked before it reaches a model or an index.

    Args:
        value: what the caller passed.
        name: str. The argument's name, for the message.

    Returns:
        int.

    Raises:
        ValueError: for a bool, a non-integer or a value below 1 (Keras
            given `batch_size=-1` failed with an unrelated error and left
            the model unable to predict again).

    Example:

    ```python
    positive_int(8, "batch_size")   # 8
    ```
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 1
    ):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)
