"""Training on several devices with `keras.distribution` (JAX backend).

`train.distribution` picks the layout:

- `"none"`: one device (the default);
- `"data"`: `DataParallel`: every device holds all the weights and a slice
  of each batch; gradients are averaged. Suits models whose tables fit one
  device;
- `"model"`: `ModelParallel` on a `("batch", "model")` device mesh with
  `train.model_shards` devices on the model axis: every embedding table is
  split along its columns across the model axis (each device holds all rows
  and `dim / model_shards` values of each), and each batch is split across
  the batch axis. Columns rather than rows, because JAX shards only axes
  that the mesh axis divides, and vocabulary sizes are arbitrary while the
  embedding size is ours to choose. Dense weights stay replicated.

The in-batch softmax needs every candidate of the global batch; under
`jit` XLA inserts the collectives, so a sharded run computes the same loss
as one device (up to float summation order). The same config runs on one
GPU host with several GPUs (JAX sees them all) and on a multi-host mesh:
start the same command on every host with `KERAS_DISTRIBUTION_JOB_ADDRESSES`,
`KERAS_DISTRIBUTION_NUM_PROCESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` set
(read by `keras.distribution.initialize`, which calls
`jax.distributed.initialize`), and `list_devices()` then lists the devices
of all hosts. Each process then feeds only its share of every batch
(`process_share`), as Keras expects of in-memory arrays.
"""

import contextlib
import os

import keras

from recsys.config import SUPPORTED_DISTRIBUTIONS

# Variable paths (regular expressions, matched whole) of the tables that
# `"model"` shards: every `PooledEmbedding` / `MultiHashEmbedding` of a tower.
EMBEDDING_TABLES = r".*_embedding/embeddings"


def embedding_layout_map(mesh):
    """A `LayoutMap` that splits embedding tables' columns on `"model"`.

    Args:
        mesh: `keras.distribution.DeviceMesh` with a `"model"` axis.

    Returns:
        `keras.distribution.LayoutMap`. Unlisted variables are replicated.

    Example:

    ```python
    mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"])
    layout_map = embedding_layout_map(mesh)
    keras.distribution.ModelParallel(layout_map=layout_map,
                                     batch_dim_name="batch")
    ```
    """
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[EMBEDDING_TABLES] = (None, "model")
    return layout_map


def distribution_from_config(config):
    """The `keras.distribution.Distribution` of a config, or `None`.

    Args:
        config: dict. A validated config (`train.distribution`,
            `train.model_shards`).

    Returns:
        `DataParallel`, `ModelParallel`, or `None` for `"none"`.

    Raises:
        ValueError: for another backend than JAX, or a device count that
            `model_shards` does not divide.
    """
    train = config["train"]
    mode = train.get("distribution", "none")
    if mode not in SUPPORTED_DISTRIBUTIONS:
        raise ValueError(
            f"train.distribution must be one of {SUPPORTED_DISTRIBUTIONS}. "
            f"Received: {mode!r}"
        )
    if mode == "none":
        return None
    if keras.backend.backend() != "jax":
        raise ValueError(
            f'train.distribution="{mode}" needs the JAX backend. Received: '
            f"KERAS_BACKEND={keras.backend.backend()}. Fix: set "
            'KERAS_BACKEND=jax or train.distribution="none".'
        )
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        _initialize_multi_host()
    devices = keras.distribution.list_devices()
    if mode == "data":
        return keras.distribution.DataParallel(devices=devices)
    shards = train.get("model_shards", 2)
    if shards < 1 or len(devices) % shards:
        raise ValueError(
            f"train.model_shards={shards} must divide the {len(devices)} "
            f"devices ({devices}). Fix: set train.model_shards to a divisor."
        )
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // shards, shards),
        axis_names=("batch", "model"),
        devices=devices,
    )
    return keras.distribution.ModelParallel(
        layout_map=embedding_layout_map(mesh), batch_dim_name="batch"
    )


_initialized = False


def _initialize_multi_host():
    """`jax.distributed.initialize` through Keras, once per process."""
    global _initialized
    if not _initialized:
        keras.distribution.initialize()
        _initialized = True


@contextlib.contextmanager
def distribution_scope(config):
    """Builds and trains inside the config's distribution (if any).

    Example:

    ```python
    with distribution_scope(config):
        model = build_two_tower(preprocessor, config)
        model.fit(...)
    ```
    """
    distribution = distribution_from_config(config)
    if distribution is None:
        yield None
        return
    with distribution.scope():
        yield distribution


def batch_shards(distribution):
    """Devices each batch is split across (1 without a distribution)."""
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[list(mesh.axis_names).index(distribution.batch_dim_name)]


def shardable(inputs, distribution, batch_size):
    """Training rows trimmed so that every batch splits evenly.

    JAX places each batch across the batch axis only in equal slices, so the
    last, partial batch of an epoch must divide too: this drops the last
    `rows % batch_shards` rows (fewer than the device count).

    Args:
        inputs: dict of equally long numpy arrays.
        distribution: the `Distribution`, or `None`.
        batch_size: int. The training batch size.

    Returns:
        `inputs`, trimmed.

    Raises:
        ValueError: if `batch_size` does not split evenly.
    """
    shards = batch_shards(distribution)
    if shards == 1:
        return inputs
    if batch_size % shards:
        raise ValueError(
            f"train.batch_size={batch_size} must be a multiple of the "
            f"{shards} devices that split each batch. Fix: set "
            f"train.batch_size to a multiple of {shards}."
        )
    rows = len(next(iter(inputs.values())))
    keep = rows - rows % shards
    return {name: values[:keep] for name, values in inputs.items()}


def process_share(inputs, distribution, batch_size):
    """This process's rows of the training data, and its batch size.

    With several processes (`keras.distribution.initialize`), Keras' JAX
    trainer builds each global batch from the processes' local batches
    (`jax.make_array_from_process_local_data`): a process that fed the
    whole batch would double it, every row twice. Keras splits only a
    `tf.data.Dataset` itself (`Distribution.distribute_dataset`), so for
    arrays this does the same here: processes that hold different slices
    of the batch axis take every `shards`-th row and `batch_size / shards`
    rows per step; processes of one model replica read the same rows.
    Every process has loaded the same data and split, so the shares are
    disjoint and equally long (after `shardable`), and all processes run
    the same number of steps.

    Args:
        inputs: dict of equally long numpy arrays, trimmed by `shardable`.
        distribution: the `Distribution`, or `None`.
        batch_size: int. The global training batch size.

    Returns:
        `(inputs, batch_size)` of this process; unchanged with one process.
    """
    if distribution is None or distribution.num_processes == 1:
        return inputs, batch_size
    # Keras refuses arrays under several processes unless told that they
    # are split already, as they are below.
    distribution.auto_shard_dataset = False
    shards = min(distribution.num_model_replicas, distribution.num_processes)
    index = distribution.data_shard_id
    share = {name: values[index::shards] for name, values in inputs.items()}
    return share, batch_size // shards


def process_count(distribution):
    """Processes training together (1 without `jax.distributed`)."""
    return 1 if distribution is None else distribution.num_processes
