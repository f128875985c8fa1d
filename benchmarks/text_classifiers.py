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
import json
import os
import statistics
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from recsys.baselines.text import run_baselines  # noqa: E402
from recsys.config import TEXT_ARCHITECTURES  # noqa: E402
from recsys.config import load_config  # noqa: E402
from recsys.evaluation.classification import classification_metrics  # noqa: E402
from recsys.kinds.text import class_ids  # noqa: E402
from recsys.kinds.text import encode  # noqa: E402
from recsys.kinds.text import fit_text_classifier  # noqa: E402
from recsys.kinds.text import prepare_text_data  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "tweets_text.toml")


def run_model(prepared, config):
    """Trains one model; returns its test metrics, seconds and epochs."""
    model, coverage, timing = fit_text_classifier(
        prepared, config, progress=False
    )
    x_test, y_test = encode(prepared, prepared.test, config)
    metrics = classification_metrics(y_test, model.predict(x_test, verbose=0))
    metrics.update(seconds=timing["seconds"], epochs=timing["epochs"])
    if coverage is not None:
        metrics["coverage"] = round(float(coverage), 4)
    return metrics


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
    prepared = prepare_text_data(config)

    models = {}
    for architecture in TEXT_ARCHITECTURES:
        runs = []
        for seed in range(args.seeds):
            run_config = load_config(
                CONFIG,
                [
                    *overrides,
                    f"model.architecture='{architecture}'",
                    f"train.seed={seed}",
                ],
            )
            runs.append(run_model(prepared, run_config))
            print(architecture, seed, runs[-1], file=sys.stderr)
        models[architecture] = summarize(runs)

    text, label = config["data"]["text"], config["data"]["label"]
    _, y_test = encode(prepared, prepared.test, config)
    baselines = run_baselines(
        ["tfidf_char", "tfidf_word"],
        prepared.train[text].tolist(),
        class_ids(prepared, prepared.train[label]),
        prepared.test[text].tolist(),
        y_test,
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
            for name, extra in variants.items():
                runs = []
                for seed in range(args.seeds):
                    run_config = load_config(
                        CONFIG, [*overrides, *extra, f"train.seed={seed}"]
                    )
                    runs.append(run_model(prepared, run_config))
                    print(name, seed, runs[-1], file=sys.stderr)
                vectors[name] = summarize(runs)

    print(
        json.dumps(
            {
                "config": {
                    "split": args.split,
                    "seeds": args.seeds,
                    "default_architecture": config["model"]["architecture"],
                    "overrides": args.set,
                    "train_rows": len(prepared.train),
                    "test_rows": len(prepared.test),
                },
                "models": models,
                "baselines": baselines,
                "vectors": vectors,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
