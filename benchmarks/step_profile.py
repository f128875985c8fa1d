"""Where a two-tower training step spends its time, in pure JAX.

A stripped-down step of the default model (user id + 10-movie history /
movie id, in-batch softmax, Adagrad) over MovieLens-sized tables, timed four
ways: forward only, gradient, gradient + dense Adagrad (what Keras does: the
gradient of an embedding lookup is a dense table), and gradient of the looked
up rows + Adagrad on those rows only (sparse updates). Prints one JSON object
with milliseconds per step for each batch size.

Usage:

```
python benchmarks/step_profile.py [--batch-sizes 128 256 512] [--dim 32]
```
"""

import argparse
import time

import jax
import jax.numpy as jnp
from _common import machine
from _common import print_json

NUM_ITEMS, NUM_USERS, HISTORY = 9_068, 673, 10


def _loss_from_rows(rows):
    items, history, users = rows
    queries = users + history.mean(axis=1)
    logits = queries @ items.T
    positives = jnp.sum(queries * items, axis=-1)
    return jnp.sum(jax.nn.logsumexp(logits, axis=-1) - positives)


def _lookup(tables, ids):
    return tuple(table[i] for table, i in zip(tables, ids, strict=True))


def _adagrad(table, accumulator, grad, rows=None, lr=0.1):
    if rows is None:
        accumulator = accumulator + grad * grad
        return table - lr * grad / jnp.sqrt(accumulator + 1e-7), accumulator
    rows, grad = rows.reshape(-1), grad.reshape(-1, table.shape[1])
    accumulator = accumulator.at[rows].add(grad * grad)
    table = table.at[rows].add(-lr * grad / jnp.sqrt(accumulator[rows] + 1e-7))
    return table, accumulator


def profile(batch_size, dim, repeats):
    key = jax.random.PRNGKey(0)
    sizes = (NUM_ITEMS, NUM_ITEMS, NUM_USERS)
    tables = tuple(jax.random.normal(key, (n, dim)) * 0.05 for n in sizes)
    accumulators = tuple(jnp.full_like(t, 0.1) for t in tables)
    ids = (
        jax.random.randint(key, (batch_size,), 1, NUM_ITEMS),
        jax.random.randint(key, (batch_size, HISTORY), 0, NUM_ITEMS),
        jax.random.randint(key, (batch_size,), 1, NUM_USERS),
    )

    def loss(tables):
        return _loss_from_rows(_lookup(tables, ids))

    @jax.jit
    def dense_step(tables, accumulators):
        grads = jax.grad(loss)(tables)
        return tuple(
            zip(*map(_adagrad, tables, accumulators, grads), strict=True)
        )

    @jax.jit
    def sparse_step(tables, accumulators):
        grads = jax.grad(_loss_from_rows)(_lookup(tables, ids))
        return tuple(
            zip(
                *(
                    _adagrad(t, a, g, rows=i)
                    for t, a, g, i in zip(
                        tables, accumulators, grads, ids, strict=True
                    )
                ),
                strict=True,
            )
        )

    def timed(function, *args):
        jax.block_until_ready(function(*args))
        start = time.perf_counter()
        for _ in range(repeats):
            out = function(*args)
        jax.block_until_ready(out)
        return (time.perf_counter() - start) / repeats * 1e3

    result = {
        "forward_ms": timed(jax.jit(loss), tables),
        "gradient_ms": timed(jax.jit(jax.grad(loss)), tables),
        "dense_adagrad_step_ms": timed(dense_step, tables, accumulators),
        "sparse_adagrad_step_ms": timed(sparse_step, tables, accumulators),
    }
    result["dense_examples_per_second"] = (
        batch_size / result["dense_adagrad_step_ms"] * 1e3
    )
    result["sparse_examples_per_second"] = (
        batch_size / result["sparse_adagrad_step_ms"] * 1e3
    )
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[128, 256, 512, 1024]
    )
    parser.add_argument("--dim", type=int, default=32, help="Embedding size.")
    parser.add_argument("--repeats", type=int, default=300, help="Timed steps.")
    args = parser.parse_args(argv)
    print_json(
        {
            "dim": args.dim,
            "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()],
            "machine": machine(),
            "batches": {
                b: profile(b, args.dim, args.repeats) for b in args.batch_sizes
            },
        }
    )


if __name__ == "__main__":
    main()
