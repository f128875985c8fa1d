"""How much Keras prints while it fits."""

import sys


def keras_verbosity(progress: bool) -> int:
    """The `verbose` argument of `keras.Model.fit` for a `progress` flag.

    A terminal gets the live progress bar; a log file or a pipe one line
    per epoch, since a bar redrawn with carriage returns would fill it.

    Args:
        progress: bool. Show training progress at all.

    Returns:
        int. `0` (silent), `1` (progress bar) or `2` (one line per epoch).

    Example:

    ```python
    model.fit(x, y, verbose=keras_verbosity(progress=True))
    ```
    """
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2
