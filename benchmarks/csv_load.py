"""What reading a CSV through recsys costs beyond pandas' own read.

`recsys.data.sources.load_interactions` reads a `.csv` as `pandas.read_csv`
does, plus what keeps ids intact: the separator from the header line, and
every row of the columns of whole numbers looked through for codes (`0042`
stays text, and `00150` is not `150`; `csv_layout`). This measures both on
one generated table: users, items, times and ratings, all whole numbers
(the case that pays most), best of `--repeats` reads.

Usage:

```
python benchmarks/csv_load.py --rows 2000000
```

Prints one JSON object: seconds for `pandas.read_csv`, for
`load_interactions`, and their ratio.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd

from recsys.data.sources import load_interactions


def _best(read, repeats):
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        read()
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user": rng.integers(1, 100_000, args.rows),
            "item": rng.integers(1, 20_000, args.rows),
            "timestamp": rng.integers(10**9, 2 * 10**9, args.rows),
            "rating": rng.integers(1, 6, args.rows),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ratings.csv")
        frame.to_csv(path, index=False)
        pandas = _best(lambda: pd.read_csv(path), args.repeats)
        recsys = _best(
            lambda: load_interactions(path, progress=False), args.repeats
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "pandas_read_csv_s": round(pandas, 3),
                "load_interactions_s": round(recsys, 3),
                "ratio": round(recsys / pandas, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
