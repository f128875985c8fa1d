"""The service's Python around the index search, per query, in process.

`RetrievalService.retrieve_many` (what a server's micro-batch calls) on
batches of 1, 4 and 16 queries of two shapes, against the index search
alone for the same query vectors (`Index.search_rows`, no exclusions): the
baseline in the same run. `over_search` is the ratio; what lies above 1 is
the request's planning, id lookups, query tower and exclusions.

- `features`: a history of 3 random catalog items, k=10 (the query tower
  per request; the history is excluded from the answer).
- `deep`: a known user, k=150, 3 random exclusions plus the user's seen
  items.

Each cell is the fastest of `--passes` passes over the same `--queries`
queries (the first pass fills the service's id cache), in microseconds per
query. HTTP is left out: `serve_load.py` measures the server.

Usage:

```
python benchmarks/retrieve_batches.py --bundle /tmp/sl_1m [--passes 6]
```
"""

import argparse
import sys
import time

import numpy as np
from _common import command_line
from _common import machine
from _common import print_json


def queries(service, shape, count, seed=0):
    """`retrieve` keyword arguments of one shape."""
    rng = np.random.default_rng(seed)
    items = service.bundle.item_ids
    users = service.bundle.user_ids
    found = []
    for _ in range(count):
        if shape == "features":
            history = [item.item() for item in rng.choice(items, 3)]
            found.append({"features": {"history": history}, "k": 10})
        else:
            exclude = [item.item() for item in rng.choice(items, 3)]
            user = rng.choice(users).item()
            found.append({"user_id": user, "k": 150, "exclude": exclude})
    return found


def vector(service, query):
    """The query vector `retrieve` searches with."""
    if "features" in query:
        return service.embed([query["features"]])[0]
    bundle = service.bundle
    return bundle.user_embeddings[bundle.user_row(query["user_id"])]


def fastest(call, batches, passes):
    """Microseconds per query of the fastest pass of `call` over batches."""
    best = float("inf")
    size = sum(len(batch) for batch in batches)
    for _ in range(passes):
        start = time.perf_counter()
        for batch in batches:
            call(batch)
        best = min(best, (time.perf_counter() - start) / size * 1e6)
    return round(best, 1)


def measure(service, shape, batch_size, args):
    found = queries(service, shape, args.queries)
    batches = [
        found[i : i + batch_size] for i in range(0, len(found), batch_size)
    ]
    vectors = [
        np.stack([vector(service, query) for query in batch])
        for batch in batches
    ]
    k = found[0]["k"]
    service_us = fastest(service.retrieve_many, batches, args.passes)
    search_us = fastest(
        lambda v: service.index.search_rows(v, k), vectors, args.passes
    )
    return {
        "retrieve_many_us": service_us,
        "search_us": search_us,
        "over_search": round(service_us / search_us, 3),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=6)
    args = parser.parse_args(argv)

    from recsys.serving.service import RetrievalService

    service = RetrievalService.load(args.bundle)
    result = {"command": command_line(), "machine": machine()}
    for shape in ("features", "deep"):
        result[shape] = {
            str(size): measure(service, shape, size, args)
            for size in args.batches
        }
    print_json(result)


if __name__ == "__main__":
    sys.exit(main())
