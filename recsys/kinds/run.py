"""`recsys.train`: a config's model kind trained, from Python.

The same steps as `recsys train` (`ModelKind.train`), for every
`model.kind`, from what a notebook passes as the config. Kept apart from
the kinds' registry (`recsys.kinds`), which `recsys.config` reads: this
module reads configs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from recsys.config import load_config
from recsys.kinds import get_kind
from recsys.kinds.base import TrainResult
from recsys.training.interrupt import ctrl_c_at_batch_end


def train(
    config: dict,
    output: str | None = None,
    *,
    frame=None,
    progress: bool = True,
    write: bool = True,
) -> TrainResult:
    """Trains `config`'s model kind and writes its bundle to `output`.

    What `recsys train` runs, for every `model.kind`. Ctrl-C stops it at
    the next batch end, as a `KeyboardInterrupt`.

    Args:
        config: dict. A config as `recsys.load_config` returns it (a dict
            of sections written by hand, the typed config or a TOML path
            are validated the same way first).
        output: str. The bundle directory to write.
        frame: optional DataFrame of the whole table; defaults to the
            config's `data.source` (or its Parquet `data.path`).
        progress: bool. Show progress bars.
        write: bool. False trains and evaluates in memory only: no bundle,
            no checkpoints (`TrainResult.bundle` is None).

    Returns:
        `TrainResult` with `.bundle` (loaded back from disk), `.metrics`
        (also saved as `metrics.json`), `.model` and `.prepared`; it
        unpacks as `bundle, metrics = recsys.train(...)`.

    Example:

    ```python
    config = recsys.load_config("configs/movielens_two_tower.toml")
    result = recsys.train(config, write=False)
    result.metrics["test"]["hr@10"]
    ```
    """
    import pandas as pd

    config = validated_config(config)
    if frame is not None and not isinstance(frame, pd.DataFrame):
        raise TypeError(
            "recsys.train's frame= is the table as a pandas DataFrame. "
            f"Received: {type(frame).__name__} {str(frame)[:60]!r}. Fix: "
            "pass pandas.read_csv(...) (or .read_parquet), or leave frame "
            "out and name the file in data.source."
        )
    from recsys.training.checkpoint import training_job

    kind = get_kind(config["model"]["kind"])
    # As `recsys train`: the output, its lock and the job directory are
    # settled before any data is read (a folder of the user's was refused
    # only once trained, and the model lost).
    job = (
        training_job(config, output)
        if write and output
        else contextlib.nullcontext()
    )
    with ctrl_c_at_batch_end(), job:
        return kind.train(
            config, output, frame=frame, progress=progress, write=write
        )


def validated_config(config, taker="recsys.train"):
    """`config` as `load_config` returns it, from what a notebook passes:
    that dict (validating it again changes nothing), a dict written by
    hand, the typed config (`typed=True`) or a TOML path. `taker`: the
    function named in the error for anything else."""
    if isinstance(config, str | os.PathLike):
        return load_config(config)
    if callable(getattr(config, "to_dict", None)):  # a typed config
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise TypeError(
            f"{taker} takes a config: the dict (or typed config) "
            "recsys.load_config returns, or a TOML path. Received: "
            f"{type(config).__name__}."
        )
    return load_config(config)
