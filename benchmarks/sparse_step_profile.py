"""Where the package's sparse two-tower step spends its time.

The model of `high_cardinality.py` (user and item id tables, dim 32,
in-batch softmax with logQ and accidental hits removed, Adagrad 0.1,
`--users` user rows, 200k item rows, batch 2048), timed four ways in one
process, milliseconds per step after compilation:

- `fit`: `model.fit` on numpy arrays (what users run; includes Keras'
  input pipeline and per-step Python);
- `jitted_step`: the same `train_step`, jitted with donated state, called
  in a loop on one batch already on the device (no input pipeline);
- `loss`: `TwoTower.compute_loss` forward and backward alone, given the
  two towers' outputs (the batch x batch logits);
- `row_updates`: the Adagrad row update of both tables alone
  (`recsys.models.sparse_step.update_rows`: deduplicate, sum, gather,
  scatter).

Prints one JSON object.

Usage:

```
.venv/bin/python benchmarks/sparse_step_profile.py [--users 10000000]
```
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras loads

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine  # noqa: E402
from _common import print_json  # noqa: E402

from recsys.models import Tower  # noqa: E402
from recsys.models import TwoTower  # noqa: E402
from recsys.models.sparse_step import update_rows  # noqa: E402


def _ms(function, repeats):
    jax.block_until_ready(function())
    start = time.perf_counter()
    for _ in range(repeats):
        out = function()
    jax.block_until_ready(out)
    return 1000 * (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    batch, dim = args.batch_size, args.dim
    keras.utils.set_random_seed(0)

    def tower(name, rows):
        spec = {
            "name": name,
            "type": "embedding",
            "input_dim": rows,
            "output_dim": dim,
        }
        return Tower([spec], dim, normalize=False, combine="sum")

    model = TwoTower(
        tower("u", args.users), tower("i", args.items), candidate_id="i"
    )
    model.compile(
        keras.optimizers.Adagrad(0.1), jit_compile=True, steps_per_execution=16
    )
    rng = np.random.default_rng(0)
    rows = batch * 64
    inputs = {
        "u": rng.zipf(1.2, rows) % args.users,
        "i": rng.zipf(1.2, rows) % args.items,
        "candidate_sampling_probability": rng.uniform(1e-6, 1e-3, rows).astype(
            "float32"
        ),
    }
    model.fit(inputs, batch_size=batch, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(inputs, batch_size=batch, epochs=1, verbose=0)
    fit_ms = 1000 * (time.perf_counter() - start) / 64

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    data = ({k: jnp.asarray(v[:batch]) for k, v in inputs.items()},)
    step = jax.jit(model.train_step, donate_argnums=0)
    holder = [state]

    def one_step():
        _, holder[0] = step(holder[0], data)
        return holder[0][0][0]

    step_ms = _ms(one_step, args.repeats)

    queries = jnp.asarray(rng.normal(size=(batch, dim)), "float32")
    candidates = jnp.asarray(rng.normal(size=(batch, dim)), "float32")
    loss_grad = jax.jit(
        jax.grad(
            lambda q, c: model.compute_loss(x=data[0], y_pred=(q, c)),
            argnums=(0, 1),
        )
    )
    loss_ms = _ms(lambda: loss_grad(queries, candidates), args.repeats)

    # Donated, as in the step: the scatters then write in place.
    @jax.jit
    def updates(tables):
        out = []
        for (table, slot), ids in zip(
            tables, (data[0]["u"], data[0]["i"]), strict=True
        ):
            table, (slot,) = update_rows(
                "adagrad",
                model.optimizer,
                table,
                [slot],
                ids,
                jnp.ones((batch, dim)),
                jnp.float32(0.1),
                jnp.int32(0),
            )
            out.append((table, slot))
        return out

    updates = jax.jit(updates, donate_argnums=0)
    tables = holder[0][0]
    slots = [v for v in holder[0][2] if len(v.shape) == 2]
    holder.append(list(zip(tables, slots, strict=True)))

    def one_update():
        holder[1] = updates(holder[1])
        return holder[1][0][0]

    update_ms = _ms(one_update, args.repeats)
    print_json(
        {
            "users": args.users,
            "items": args.items,
            "batch_size": batch,
            "ms_per_step": {
                "fit": fit_ms,
                "jitted_step": step_ms,
                "loss": loss_ms,
                "row_updates": update_ms,
            },
            "examples_per_second_fit": batch / fit_ms * 1000,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
