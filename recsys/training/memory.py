"""Whether a model's embedding tables fit in this machine's memory.

`check_table_memory` is called before a model is built, from its input
specs (`recsys.models.inputs`), so that a config asking for tables larger
than the memory is refused with the settings to lower, not killed mid-build.
"""

import os
from typing import Any

from recsys.training.optimizers import OPTIMIZER_SLOTS

# The share of the memory the embedding tables may take, with their copies.
MEMORY_SHARE = 0.9


def check_table_memory(
    specs: list[dict[str, Any]],
    *,
    optimizer: str = "adam",
    memory_bytes: int | None = None,
) -> None:
    """Raises a ValueError when the embedding tables cannot fit in memory.

    Better than the process being killed mid-build, or an allocation error
    that names no setting. Each table is `rows x output_dim` float32
    values, held as weights and the optimizer's slots, plus two working
    copies (the initial values while they are placed, a step's buffers);
    all of them must fit in `MEMORY_SHARE` of the memory. (Measured:
    MovieLens at `embedding_dim = 100000`, 6.1 GiB of tables and as much
    again of Adagrad's slot, was killed on a 23.5 GiB machine: it needed
    more than four copies' worth.) The estimate is of the tables alone.

    Args:
        specs: list of dict. Input specs (`input_specs`, `history_spec`).
        optimizer: str. A name of `OPTIMIZERS` (its slots per weight,
            `OPTIMIZER_SLOTS`). Defaults to `"adam"`.
        memory_bytes: int or None. The memory to fit in; defaults to the
            machine's physical memory (no check where it is unknown).

    Raises:
        ValueError: naming the largest table and the settings to lower.

    Example:

    ```python
    specs = input_specs(preprocessor, ["user_id"], output_dim=32)
    check_table_memory(specs, optimizer="adagrad")
    ```
    """
    if memory_bytes is None:
        memory_bytes = _physical_memory()
    tables = [
        (spec["name"], _rows(spec), spec["output_dim"])
        for spec in specs
        if spec["type"] == "embedding"
    ]
    if memory_bytes is None or not tables:
        return
    copies = 3 + OPTIMIZER_SLOTS[optimizer]
    needed = sum(rows * dim for _, rows, dim in tables) * 4 * copies
    if needed <= memory_bytes * MEMORY_SHARE:
        return
    name, rows, dim = max(tables, key=lambda table: table[1] * table[2])
    raise ValueError(
        f"The embedding tables need about {needed / 2**30:,.1f} GiB as "
        f"weights, {optimizer} state and working copies, more than this "
        f"machine's {memory_bytes / 2**30:,.1f} GiB can hold; the largest "
        f"is '{name}', "
        f"{rows:,} rows x {dim:,}. Fix: lower model.embedding_dim (or a "
        "feature's embedding_dim), or hash the id feature of most values "
        "into fewer rows (num_buckets)."
    )


def _rows(spec: dict[str, Any]) -> int:
    """Rows of a spec's table: a hashed feature's buckets (and padding)."""
    if "num_buckets" in spec:
        return spec["num_buckets"] + 1
    return spec["input_dim"]


def _physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
