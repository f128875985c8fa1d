"""The in-batch softmax loss of `TwoTower`, forward + backward, against its
previous formulation, in the same run (JAX, CPU).

`TwoTower.compute_loss` (row-wise positives, accidental hits masked with one
`where`) is timed beside a replica of the formulation it replaced (positives
picked from the logits with an identity matrix, hits masked by adding a mask
times a constant), on random unit vectors and Zipf-like candidate ids, with
logQ correction and accidental-hit removal on (the default config). Both
give the same loss (checked). Prints one JSON object: milliseconds per call
for each batch size and the ratio previous / current.

Usage:

```
python benchmarks/two_tower_loss.py [--batch-sizes 512 2048] [--dim 32]
```
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")  # before Keras loads

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine  # noqa: E402
from _common import print_json  # noqa: E402
from keras import ops  # noqa: E402

from recsys.layers.remove_accidental_hits import MIN_LOGIT  # noqa: E402
from recsys.models import Tower  # noqa: E402
from recsys.models import TwoTower  # noqa: E402
from recsys.names import SAMPLING_PROBABILITY  # noqa: E402


def _model(dim, logq_weight=1.5):
    def tower(name):
        spec = {
            "name": name,
            "type": "embedding",
            "input_dim": 10,
            "output_dim": dim,
        }
        return Tower([spec], dim, normalize=False)

    return TwoTower(
        tower("user"),
        tower("item"),
        candidate_id="item",
        logq_weight=logq_weight,
    )


def _previous_loss(model, x, queries, candidates):
    # The formulation before issue #13, op for op.
    logits = ops.matmul(queries, ops.transpose(candidates)) / model.temperature
    log_q = ops.log(ops.clip(x[SAMPLING_PROBABILITY], 1e-9, 1.0))
    logits = logits - model.logq_weight * log_q[None, :]
    labels = ops.eye(ops.shape(logits)[0], dtype=logits.dtype)
    ids = x["item"]
    positive = ops.take(ids, ops.argmax(labels, axis=-1))
    duplicate = ops.cast(ops.equal(positive[:, None], ids[None, :]), "float32")
    logits = logits + (duplicate - labels) * MIN_LOGIT
    positives = ops.sum(logits * labels, axis=-1)
    return ops.sum(ops.logsumexp(logits, axis=-1) - positives)


def _current_loss(model, x, queries, candidates):
    return model.compute_loss(x=x, y_pred=(queries, candidates))


def _time(fn, *args, repeats):
    jax.block_until_ready(fn(*args))  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, (time.perf_counter() - start) / 10)
    return best * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[512, 2048]
    )
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = _model(args.dim)
    rng = np.random.default_rng(0)
    results = {}
    for batch in args.batch_sizes:
        vectors = rng.normal(size=(2, batch, args.dim)).astype("float32")
        vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
        ids = np.minimum(rng.zipf(1.2, batch), 50_000).astype("int32")
        x = {
            "item": jnp.asarray(ids),
            SAMPLING_PROBABILITY: jnp.asarray(
                rng.uniform(1e-5, 1e-2, batch).astype("float32")
            ),
        }
        timings = {}
        values = {}
        for name, loss in (
            ("previous", _previous_loss),
            ("current", _current_loss),
        ):
            step = jax.jit(
                jax.value_and_grad(
                    lambda q, c, loss=loss, x=x: loss(model, x, q, c),
                    argnums=(0, 1),
                )
            )
            values[name] = float(step(vectors[0], vectors[1])[0])
            timings[name] = _time(
                step, vectors[0], vectors[1], repeats=args.repeats
            )
        if not np.isclose(values["previous"], values["current"], rtol=1e-5):
            raise SystemExit(f"The losses differ: {values}")
        results[batch] = {
            "previous_ms": round(timings["previous"], 3),
            "current_ms": round(timings["current"], 3),
            "loss": values["current"],
        }
    print_json(
        {
            "loss_forward_backward": results,
            "ratio": {
                f"previous_over_current_at_{b}": round(
                    r["previous_ms"] / r["current_ms"], 2
                )
                for b, r in results.items()
            },
            "setup": {"dim": args.dim, "backend": "jax", "device": "cpu"},
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
