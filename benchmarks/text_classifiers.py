"""The four text architectures against the TF-IDF baselines, in one run.

Every model trains the way `recsys train configs/tweets_text.toml` trains it
(early stopping on the validation carve, then a refit on all training rows)
and is scored on PROTOCOL.md's tweets test split; the TF-IDF + logistic
regression baselines are fitted on the same rows in the same run. Each
architecture runs with `--seeds` seeds; the JSON holds the mean and the
range. With `--vectors`, the default architecture also runs with word2vec
vectors trained (gensim) on the training texts' own tokens, frozen and
fine-tuned, beside random initialization.

Prints one JSON object: `{"config", "models", "baselines", "vectors"}`.

Usage:

```
python benchmarks/text_classifiers.py [--seeds 3] [--vectors]
    [--split test|validation] [--set KEY=VALUE ...]
```
"""

import argparse
import os
import statistics
import sys
import tempfile

from _common import config_path
from _common import machine
from _common import print_json

from recsys.baselines.text import run_baselines
from recsys.config import TEXT_ARCHITECTURES
from recsys.config import load_config
from recsys.kinds import get_kind
from recsys.kinds.text import class_ids
from recsys.kinds.text import encode

CONFIG = config_path("tweets_text.toml")
# Each model's run: the baselines are fitted once, in `main`.
NO_BASELINES = "evaluate.baselines=[]"


def run_model(prepared, config):
    """Trains and scores one model as `recsys train` does (no baselines).

    The data is prepared once for every run (`prepared`): the kind's fit
    and evaluate steps, not `recsys.train`, which would prepare it again.

    Returns:
        dict: the split's metrics, with `seconds`, `epochs` and, for
        pretrained vectors, `coverage`.
    """
    kind = get_kind("text")
    fitted = kind.fit(prepared, config, progress=False)
    metrics = kind.evaluate(fitted, {}, prepared, config, progress=False)
    scores = metrics[config["evaluate"]["split"]]
    epochs = metrics["train"]["epochs"]
    # An ensemble (`--set model.architecture=conv1d+flatten`): all members'.
    scores["epochs"] = sum(epochs) if isinstance(epochs, list) else epochs
    if "pretrained_coverage" in metrics:
        scores["coverage"] = metrics["pretrained_coverage"]
    return scores


def run_seeds(prepared, overrides, seeds, name):
    """`run_model` at seeds `0 .. seeds - 1` of one setting; the summary."""
    runs = []
    for seed in range(seeds):
        config = load_config(
            CONFIG, [*overrides, NO_BASELINES, f"train.seed={seed}"]
        )
        runs.append(run_model(prepared, config))
        print(name, seed, runs[-1], file=sys.stderr)
    return summarize(runs)


def summarize(runs):
    """Mean and range of each metric over seeds."""
    out = {"runs": runs}
    for key in ("accuracy", "auc", "logloss", "seconds", "epochs"):
        values = [run[key] for run in runs]
        out[key] = round(statistics.mean(values), 4)
        out[f"{key}_range"] = [min(values), max(values)]
    return out


def word2vec_file(prepared, config, directory, dim):
    """Word2vec vectors of the training texts' tokens, in GloVe format."""
    from gensim.models import Word2Vec

    name = config["data"]["text"]
    sentences = prepared.preprocessor.tokenize(name, prepared.train[name])
    model = Word2Vec(
        sentences,
        vector_size=dim,
        window=5,
        min_count=1,
        sg=1,
        epochs=20,
        seed=config["train"]["seed"],
        workers=1,
    )
    path = os.path.join(directory, "tweets_word2vec.txt")
    with open(path, "w") as f:
        for word in model.wv.index_to_key:
            vector = " ".join(f"{v:.6f}" for v in model.wv[word])
            f.write(f"{word} {vector}\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--split", default="test")
    parser.add_argument("--vectors", action="store_true")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    overrides = [f"evaluate.split='{args.split}'", *args.set]
    config = load_config(CONFIG, overrides)
    prepared = get_kind("text").prepare(config)

    models = {
        architecture: run_seeds(
            prepared,
            [*overrides, f"model.architecture='{architecture}'"],
            args.seeds,
            architecture,
        )
        for architecture in TEXT_ARCHITECTURES
    }

    text, label = config["data"]["text"], config["data"]["label"]
    _, y_test = encode(prepared, prepared.test, config)
    baselines = run_baselines(
        config["evaluate"]["baselines"],
        prepared.train[text].tolist(),
        class_ids(prepared, prepared.train[label]),
        prepared.test[text].tolist(),
        y_test,
        len(prepared.classes),
    )

    vectors = {}
    if args.vectors:
        dim = config["model"]["embedding_dim"]
        with tempfile.TemporaryDirectory() as directory:
            path = word2vec_file(prepared, config, directory, dim)
            variants = {
                "random": [],
                "word2vec_frozen": [
                    f"model.embeddings='{path}'",
                    "model.trainable=false",
                ],
                "word2vec_fine_tuned": [f"model.embeddings='{path}'"],
            }
            vectors = {
                name: run_seeds(
                    prepared, [*overrides, *extra], args.seeds, name
                )
                for name, extra in variants.items()
            }

    print_json(
        {
            "config": {
                "split": args.split,
                "seeds": args.seeds,
                "default_architecture": config["model"]["architecture"],
                "overrides": args.set,
                "train_rows": len(prepared.train),
                "test_rows": len(prepared.test),
            },
            "machine": machine(),
            "models": models,
            "baselines": baselines,
            "vectors": vectors,
        }
    )


if __name__ == "__main__":
    main()
