"""Building a `TwoTower` from a config and fitting it, with timings."""

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import keras

from recsys.models.inputs import history_spec
from recsys.models.inputs import input_specs
from recsys.models.tower import Tower
from recsys.models.two_tower import TwoTower
from recsys.names import HISTORY
from recsys.training.checkpoint import resume_epoch
from recsys.training.divergence import StopWhenDiverged
from recsys.training.memory import check_table_memory
from recsys.training.optimizers import make_optimizer
from recsys.training.progress import keras_verbosity
from recsys.training.stop_on_interrupt import interruptible_fit

if TYPE_CHECKING:
    from recsys.features import Preprocessor


def _compile_options() -> dict[str, Any]:
    """Per-backend `compile` settings, measured on 2 CPU cores (default model).

    Several steps per compiled call cut the per-step Python overhead, a large
    share of a small step (JAX: +10% examples/s). TensorFlow with XLA *and*
    several steps per call falls to 24k examples/s (its embedding gradients
    leave XLA), while 16 steps without XLA give 101k; 1 step with XLA 94k.
    """
    if keras.backend.backend() == "tensorflow":
        return {"jit_compile": False, "steps_per_execution": 16}
    return {"jit_compile": True, "steps_per_execution": 16}


def build_two_tower(
    preprocessor: "Preprocessor", config: dict[str, Any]
) -> TwoTower:
    """Builds (and compiles) the `TwoTower` that `config` describes.

    Args:
        preprocessor: fitted `features.Preprocessor`.
        config: dict. A validated run config.

    Returns:
        A compiled `TwoTower`.
    """
    model_config = config["model"]
    item = config["data"]["item"]
    if model_config["combine"] == "sum":
        numeric = [
            name
            for name in model_config["query_features"]
            + model_config["candidate_features"]
            if preprocessor.feature(name).kind == "numeric"
        ]
        if numeric:
            raise ValueError(
                f'model.combine="sum" cannot take numeric features {numeric}:'
                " it adds one vector per feature, and a number is no vector. "
                'Fix: declare them kind = "bucketized" (quantile bins, one '
                'vector each) or set model.combine = "concat".'
            )
    # With `combine="sum"` the feature vectors are added: every table has
    # the tower's size.
    size = model_config["embedding_dim"]
    dim = size if model_config["combine"] == "sum" else None
    query_inputs = input_specs(
        preprocessor, model_config["query_features"], output_dim=dim
    )
    if model_config["history_length"]:
        query_inputs.append(
            history_spec(
                preprocessor,
                item,
                output_dim=size,
                encoder=model_config.get("history_encoder", "mean"),
                length=model_config["history_length"],
            )
        )
    candidate_inputs = input_specs(
        preprocessor, model_config["candidate_features"], output_dim=dim
    )
    if config["train"].get("distribution", "none") != "model":
        # (Tables split across devices, and hosts, are not this host's.)
        check_table_memory(
            query_inputs + candidate_inputs,
            optimizer=config["train"]["optimizer"],
        )
    else:
        _check_model_shards(
            query_inputs + candidate_inputs,
            config["train"].get("model_shards", 2),
            model_config,
        )
    towers = {}
    for side, inputs in (
        ("query", query_inputs),
        ("candidate", candidate_inputs),
    ):
        towers[side] = Tower(
            inputs,
            size,
            normalize=model_config["normalize"],
            combine=model_config["combine"],
            name=f"{side}_tower",
        )
    model = TwoTower(
        towers["query"],
        towers["candidate"],
        candidate_id=item,
        temperature=model_config["temperature"],
        logq_correction=model_config["logq_correction"],
        logq_weight=model_config["logq_weight"],
        remove_accidental_hits=model_config["remove_accidental_hits"],
    )
    optimizer = make_optimizer(
        config["train"]["optimizer"], config["train"]["learning_rate"]
    )
    model.sparse_updates = config["train"]["sparse_updates"]
    model.compile(optimizer=optimizer, **_compile_options())
    return model


def _check_model_shards(inputs, shards, model_config):
    """Tables split by columns need widths that `shards` divides (JAX's
    sharding error, after the table was read, named neither setting)."""
    for spec in inputs:
        if spec["type"] != "embedding":
            continue
        width, parts = spec["output_dim"], 1
        if spec.get("hash_combiner") == "concat":
            parts = spec["num_hashes"]  # tables of width / num_hashes each
        if (width // parts) % shards == 0:
            continue
        name = spec["name"]
        setting = (
            "model.embedding_dim"
            if model_config["combine"] == "sum" or name == HISTORY
            else f"features.{name}.embedding_dim (or its default from the "
            "vocabulary size)"
        )
        split = (
            f", split into num_hashes = {parts} tables," if parts > 1 else ""
        )
        raise ValueError(
            f'train.distribution = "model" splits every embedding table\'s '
            f"columns across train.model_shards = {shards} devices, and "
            f"{setting} = {width}{split} is not a multiple of "
            f"{shards * parts}. Fix: a multiple of {shards * parts} there, or "
            "a train.model_shards that divides "
            f"{'each table' if parts > 1 else 'it'}."
        )


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each epoch (`seconds`, a list)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def fit_two_tower(
    model: TwoTower,
    inputs: dict[str, Any] | keras.utils.PyDataset,
    config: dict[str, Any],
    callbacks: Sequence[keras.callbacks.Callback] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Fits `model` on `inputs` and returns its training timings.

    Args:
        model: compiled `TwoTower`.
        inputs: dict of numpy arrays (one row per interaction), or a
            `keras.utils.PyDataset` of batches with a `batch_size`.
        config: dict. The run config (`train` section).
        callbacks: extra Keras callbacks.
        progress: bool. Show Keras' progress bar (one line per epoch when the
            output is not a terminal).

    Returns:
        dict with `"seconds"` (total), `"epoch_seconds"` and
        `"examples_per_second"`, counted over the epochs after the first
        (which includes tracing and compilation) when there are several.
    """
    train = config["train"]
    timer = EpochTimer()
    verbose = keras_verbosity(progress)
    if isinstance(inputs, keras.utils.PyDataset):
        # A streamed dataset batches and shuffles itself, window by window:
        # Keras' own shuffling of its batch order would load a window of
        # row groups for nearly every batch (100M rows: 26k instead of
        # 100k+ examples/s, benchmarks/RESULTS.md).
        rows = len(inputs) * inputs.batch_size
        # Where the last batch holds only the rows left over (profiles).
        rows = min(rows, getattr(inputs, "num_rows", rows))
        data = {"x": inputs, "shuffle": False}
    else:
        rows = len(next(iter(inputs.values())))
        data = {"x": inputs, "batch_size": train["batch_size"], "shuffle": True}
    interruptible_fit(
        model,
        **data,
        epochs=train["epochs"],
        initial_epoch=resume_epoch(callbacks),
        verbose=verbose,
        # Before the checkpoints: a diverged epoch is not saved.
        callbacks=[timer, StopWhenDiverged(), *callbacks],
    )
    steady = timer.seconds[1:] or timer.seconds
    return {
        "seconds": sum(timer.seconds),
        "epoch_seconds": timer.seconds,
        "examples_per_second": rows * len(steady) / max(sum(steady), 1e-9),
        "examples_per_second_excludes_first_epoch": len(timer.seconds) > 1,
        "train_rows": rows,
        "backend": keras.backend.backend(),
        # Row updates of the tables (recsys.models.sparse_updates): JAX only.
        "sparse_updates": model.sparse_updates
        and keras.backend.backend() == "jax",
    }
