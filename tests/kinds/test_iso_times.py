"""Times as date strings (ISO, or `data.time_format`) train exactly as the
same times as numbers."""

import numpy as np
import pandas as pd

from recsys import load_config
from recsys import train


def test_iso_date_strings_split_and_train_as_unix_seconds(tmp_path):
    rng = np.random.default_rng(0)
    rows = 1200
    seconds = 1_700_000_000 + rng.permutation(rows) * 3600
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 60, rows),
            "item_id": rng.integers(0, 40, rows),
            "timestamp": seconds,
        }
    )
    stamps = pd.to_datetime(seconds, unit="s")
    iso = frame.assign(timestamp=stamps.strftime("%Y-%m-%dT%H:%M:%S"))
    # Day first: sorting these strings is not sorting the times.
    day_first = frame.assign(timestamp=stamps.strftime("%d/%m/%Y %H:%M:%S"))
    tables = {
        "numbers.csv": (frame, "ISO8601"),
        "iso.csv": (iso, "ISO8601"),
        "day_first.csv": (day_first, "%d/%m/%Y %H:%M:%S"),
    }
    metrics = []
    for name, (table, time_format) in tables.items():
        table.to_csv(tmp_path / name, index=False)
        config = load_config(
            "configs/examples/interactions.toml",
            [
                f'data.source="{tmp_path / name}"',
                f'data.time_format="{time_format}"',
                "train.epochs=1",
                'index.kind="brute_force"',
            ],
        )
        result = train(config, write=False, progress=False)
        metrics.append(result.metrics["test"])
    assert metrics[0] == metrics[1] == metrics[2]
    assert metrics[0]["num_interactions"] > 0
