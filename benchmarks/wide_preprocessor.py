"""Fitting and applying the preprocessor against the number of columns.

A table of thousands of columns (a one-hot export, a survey) spent its
first minutes in `Preprocessor.fit` and `transform`, silently: each
feature listed the frame's columns and each column searched the features,
so the time grew with the square of the columns. This times both on a
frame of `--rows` rows and N categorical 0/1 columns, best of `--repeats`,
and reports each size's seconds per column beside the smallest size's
(1.0 is linear growth).

Usage:

```
python benchmarks/wide_preprocessor.py --columns 500 1000 2000 4000
```

Prints one JSON object: per number of columns, seconds of `fit` and of
`transform`, and their seconds per column over the smallest size's.
"""

import argparse
import functools
import json
import time

import numpy as np
import pandas as pd

from recsys.features import CategoricalFeature
from recsys.features import Preprocessor


def best_seconds(function, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[500, 4000])
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for n in sorted(args.columns):
        names = [f"c{i}" for i in range(n)]
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(rng.integers(0, 2, (args.rows, n)), columns=names)
        specs = [CategoricalFeature(name) for name in names]
        fitted = Preprocessor(features=specs).fit(frame)
        fit = functools.partial(Preprocessor(features=specs).fit, frame)
        transform = functools.partial(fitted.transform, frame)
        runs.append(
            {
                "columns": n,
                "fit_seconds": best_seconds(fit, args.repeats),
                "transform_seconds": best_seconds(transform, args.repeats),
            }
        )
    first = runs[0]
    for run in runs:
        for step in ("fit", "transform"):
            per_column = run[f"{step}_seconds"] / run["columns"]
            base = first[f"{step}_seconds"] / first["columns"]
            run[f"{step}_per_column_vs_smallest"] = round(per_column / base, 2)
    print(json.dumps({"rows": args.rows, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
