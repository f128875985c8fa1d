import json

import pandas as pd

from recsys.cli import main


def test_cli_trains_scores_and_reranks(
    small_frame, retriever, tmp_path, capsys
):
    data = tmp_path / "ratings.csv"
    small_frame.to_csv(data, index=False)
    out = tmp_path / "liked"
    code = main(
        [
            "train",
            "configs/movielens_liked.toml",
            "--output",
            str(out),
            "--set",
            f"data.source={data}",
            "--set",
            "train.epochs=1",
            "--set",
            "train.refit=false",
            "-q",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "auc" in printed and "logistic_regression" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) == set(metrics["baseline_logistic_regression"])
    # Beside what a model that learnt nothing scores: the class shares.
    shares = metrics["class_shares"]
    assert shares["auc"] == 0.5 and 0 < shares["logloss"] < 1
    below = metrics["test"]["logloss"] > shares["logloss"]
    said = "is above that of always predicting" in " ".join(printed.split())
    assert said == below

    scores = tmp_path / "scores.parquet"
    assert main(["score", str(out), str(data), str(scores), "-q"]) == 0
    assert len(pd.read_parquet(scores)) == len(small_frame)

    code = main(
        [
            "recommend",
            retriever.path,
            "--user",
            "1",
            "-k",
            "3",
            "--rerank",
            str(out),
            "--candidates",
            "20",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 5  # "scored ..." line, header, 3 rows
    assert lines[-3].split()[0] == "1"
    argv = ["recommend", retriever.path, "--user", "no-such-user", "-k", "3"]
    assert main([*argv, "--rerank", str(out), "--candidates", "20"]) == 0
    # Before: "the most popular items (score = share of training
    # interactions)" above the ranker's scores.
    assert (
        "showing the 20 most popular items, reranked by " + str(out)
        in capsys.readouterr().err
    )


def test_cli_names_a_missing_label(small_frame, tmp_path, capsys):
    data = tmp_path / "ratings.csv"
    small_frame.drop(columns=["rating"]).to_csv(data, index=False)
    code = main(
        [
            "train",
            "configs/movielens_rating.toml",
            "--output",
            str(tmp_path / "b"),
            "--set",
            f"data.source={data}",
            "-q",
        ]
    )
    assert code == 1
    assert "Label column 'rating' is missing" in capsys.readouterr().err


def test_predict_on_a_tabular_bundle_names_recsys_score(rating_run, capsys):
    bundle, _ = rating_run
    code = main(
        ["predict", bundle.path, "--input", "in.csv", "--output", "o.csv"]
    )
    assert code == 1
    assert f"Fix: recsys score {bundle.path} IN OUT" in capsys.readouterr().err
