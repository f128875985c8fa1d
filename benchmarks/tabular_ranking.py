"""Tabular models against their baselines, and two-stage against retrieval.

One run trains, on the PROTOCOL.md split of MovieLens:
- `configs/movielens_rating.toml` (RMSE, MAE; baseline: global mean + user
  and item biases) and `configs/movielens_liked.toml` (AUC, log loss,
  accuracy; baseline: logistic regression on one-hot columns), each for
  every seed of `--seeds`; the baselines are tuned on the same validation
  carve as the model's epochs;
- the default two-tower retrieval model, whose top `--candidates` items
  (training items removed, exact search) each ranker then reorders, scored
  by HR@10 and NDCG@10 on the test split beside retrieval alone: by the
  ranker's score alone (`blend = 1`) and by the blend of both stages' scores
  whose weight was chosen on the validation split (all three models trained
  again with `evaluate.split = "validation"`, seed 0).

With `--tfrs`, the rating task also gets TFRS's ranking model
(`benchmarks/tfrs_ranking_baseline.py`, in its own subprocess since it needs
`TF_USE_LEGACY_KERAS=1`): at the TFRS tutorial's settings and at batch 256
with the epochs chosen on the validation split (8 of 1, 2, 3, 5, 8, 15, 25,
40), as `"baseline_tfrs_tutorial"` and `"baseline_tfrs_tuned"`.

Prints one JSON object: `{"rating", "liked", "two_stage"}`; the first two
hold each seed's metrics and their mean, the last one entry per list.

Usage:

```
python benchmarks/tabular_ranking.py [--seeds 0 1 2] [--candidates 100]
    [--tfrs]
```
"""

import argparse
import os
import statistics
import tempfile

from _common import child_json
from _common import config_path
from _common import machine
from _common import print_json
from _common import script_command
from _common import sibling

import recsys
from recsys.data.sources import load_interactions
from recsys.two_stage import evaluate_two_stage

CONFIGS = {
    "rating": config_path("movielens_rating.toml"),
    "liked": config_path("movielens_liked.toml"),
}
TWO_TOWER = config_path("movielens_two_tower.toml")
BLENDS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
VALIDATION = ['evaluate.split="validation"']
TFRS = {
    "tfrs_tutorial": [],
    "tfrs_tuned": ["--batch-size", "256", "--epochs", "8"],
}


def tfrs_baselines(seeds):
    """TFRS ranking baselines on the rating task, each in a subprocess."""
    script = sibling("tfrs_ranking_baseline.py")
    return {
        name: [
            child_json(script_command(script, "--seed", seed, *options))
            for seed in seeds
        ]
        for name, options in TFRS.items()
    }


def choose_blends(frame, out, candidates):
    """The blend of each ranker with the best validation HR@10."""
    retriever, _ = recsys.train(
        recsys.load_config(TWO_TOWER, VALIDATION),
        os.path.join(out, "two_tower-validation"),
        frame=frame,
        progress=False,
    )
    chosen = {}
    for task, path in CONFIGS.items():
        ranker, _ = recsys.train(
            recsys.load_config(path, VALIDATION),
            os.path.join(out, f"{task}-validation"),
            frame=frame,
            progress=False,
        )
        recommender = recsys.TwoStageRecommender(
            retriever, ranker, num_candidates=candidates
        )
        scores = evaluate_two_stage(
            recommender, frame, split="validation", blends=BLENDS
        )
        by_blend = {b: scores[f"two_stage@{b}"]["hr@10"] for b in BLENDS}
        chosen[task] = {
            "blend": max(by_blend, key=by_blend.get),
            "validation_hr@10": by_blend,
        }
    return chosen


def _mean(runs, name):
    keys = [k for k in runs[0][name] if k != "num_examples"]
    return {k: statistics.mean(run[name][k] for run in runs) for k in keys}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument(
        "--tfrs", action="store_true", help="Add the TFRS ranking baselines."
    )
    args = parser.parse_args()
    frame = load_interactions("movielens")
    out = tempfile.mkdtemp(prefix="tabular-bench-")
    result, rankers = {}, {}
    for task, path in CONFIGS.items():
        runs = []
        for seed in args.seeds:
            config = recsys.load_config(path, [f"train.seed={seed}"])
            bundle, metrics = recsys.train(
                config,
                os.path.join(out, f"{task}-{seed}"),
                frame=frame,
                progress=False,
            )
            runs.append(metrics)
            rankers.setdefault(task, bundle)
        names = [k for k in runs[0] if k == "test" or k.startswith("baseline_")]
        result[task] = {
            "seeds": args.seeds,
            "mean": {name: _mean(runs, name) for name in names},
            "runs": runs,
            "command": f"recsys train configs/movielens_{task}.toml",
        }
    if args.tfrs:
        for name, runs in tfrs_baselines(args.seeds).items():
            rating = result["rating"]
            rating["mean"][f"baseline_{name}"] = {
                key: statistics.mean(run["test"][key] for run in runs)
                for key in ("rmse", "mae")
            }
            rating[f"tfrs_runs_{name}"] = runs
    retriever, _ = recsys.train(
        recsys.load_config(TWO_TOWER),
        os.path.join(out, "two_tower"),
        frame=frame,
        progress=False,
    )
    chosen = choose_blends(frame, out, args.candidates)
    lists = {"blends_chosen_on_validation": chosen}
    for task, ranker in rankers.items():
        recommender = recsys.TwoStageRecommender(
            retriever, ranker, num_candidates=args.candidates
        )
        blend = chosen[task]["blend"]
        evaluation = evaluate_two_stage(
            recommender, frame, k=10, blends=[blend]
        )
        lists["retrieval"] = evaluation["retrieval"]
        lists[f"candidates@{args.candidates}"] = evaluation["candidates"]
        lists[f"two_stage_{task}_ranker"] = evaluation["two_stage"]
        lists[f"two_stage_{task}_ranker_blend_{blend}"] = evaluation[
            f"two_stage@{float(blend)}"
        ]
        lists["num_interactions"] = evaluation["num_interactions"]
    result["two_stage"] = lists
    result["machine"] = machine()
    print_json(result)


if __name__ == "__main__":
    main()
