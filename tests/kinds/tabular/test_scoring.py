import os

import numpy as np
import pandas as pd
import pytest

from recsys.scoring import score_file


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_score_file_streams_chunks_and_matches_predict(
    rating_run, small_frame, tmp_path, suffix
):
    bundle, _ = rating_run
    rows = small_frame.iloc[:1000]
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        rows.to_csv(source, index=False)
    else:
        rows.to_parquet(source, index=False)
    target = tmp_path / "out.parquet"
    count = score_file(
        bundle, str(source), str(target), batch_size=300, progress=False
    )
    assert count == 1000
    out = pd.read_parquet(target)
    assert list(out.columns) == [*rows.columns, "score"]
    np.testing.assert_allclose(
        out["score"], bundle.predict(rows), rtol=1e-5, atol=1e-6
    )


def test_an_input_column_named_score_is_kept_beside_the_scores(
    rating_run, small_frame, tmp_path, caplog
):
    # A feature called `score` (a credit score) and another appended
    # `score` made a Parquet file that no reader opens: the predictions
    # take a free name instead, and a warning names it.
    bundle, _ = rating_run
    rows = small_frame.iloc[:50].assign(score=-1.0, predicted_score=-2.0)
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    target = tmp_path / "out.parquet"
    score_file(bundle, str(source), str(target), progress=False)
    out = pd.read_parquet(target)
    assert list(out.columns) == [*rows.columns, "predicted_score_2"]
    assert (out["score"] == -1.0).all()
    np.testing.assert_allclose(
        out["predicted_score_2"], bundle.predict(rows), rtol=1e-5, atol=1e-6
    )
    assert "written as 'predicted_score_2'" in caplog.text


def test_a_csv_is_scored_as_training_reads_it(tmp_path):
    # Ids with leading zeros, in a CSV separated by semicolons: `recsys
    # score` must read them as the training table was read (text ids),
    # or every id is unknown to the bundle.
    from recsys import load_config
    from recsys import train
    from recsys.data.sources import load_interactions

    rng = np.random.default_rng(0)
    rows = 400
    frame = pd.DataFrame(
        {
            "customer": [f"{c:04d}" for c in rng.integers(0, 20, rows)],
            "amount": rng.normal(size=rows),
        }
    )
    frame["label"] = (frame["customer"] < "0010").astype(int)
    source = tmp_path / "rows.csv"
    frame.to_csv(source, sep=";", index=False)
    config = load_config(
        "configs/examples/labelled.toml",
        [
            f'data.source="{source}"',
            'data.user=""',
            'data.item=""',
            'data.time=""',
            'data.split="random"',
            'data.label="label"',
            'model.task="binary"',
            "model.features=[]",
            "evaluate.baselines=[]",
            "train.epochs=2",
        ],
    )
    config["features"] = {
        "customer": {"kind": "categorical"},
        "amount": {"kind": "numeric"},
    }
    bundle = train(config, str(tmp_path / "b"), progress=False).bundle
    target = tmp_path / "out.parquet"
    score_file(bundle, str(source), str(target), progress=False)
    out = pd.read_parquet(target)
    assert out["customer"].iloc[0] == frame["customer"].iloc[0]
    np.testing.assert_allclose(
        out["score"],
        bundle.predict(load_interactions(str(source))),
        rtol=1e-5,
        atol=1e-6,
    )


def test_score_file_writes_csv(liked_run, small_frame, tmp_path):
    bundle, _ = liked_run
    source = tmp_path / "in.parquet"
    small_frame.iloc[:10].to_parquet(source, index=False)
    target = tmp_path / "out.csv"
    score_file(bundle, str(source), str(target), progress=False)
    scores = pd.read_csv(target)["score"]
    assert len(scores) == 10 and scores.between(0, 1).all()


def test_score_file_errors(rating_run, retriever, small_frame, tmp_path):
    bundle, _ = rating_run
    source = tmp_path / "in.parquet"
    small_frame.iloc[:10].drop(columns=["genres"]).to_parquet(source)
    # Before any row: the file, the column and the fix.
    with pytest.raises(
        KeyError, match=r"in.parquet has no column 'genres', which the bundle"
    ):
        score_file(bundle, str(source), str(tmp_path / "o.parquet"))
    assert not (tmp_path / "o.parquet").exists()
    with pytest.raises(ValueError, match="must end in one of"):
        score_file(bundle, str(source), str(tmp_path / "o.json"))
    with pytest.raises(ValueError, match="needs a tabular bundle"):
        score_file(retriever, str(source), str(tmp_path / "o.parquet"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        score_file(bundle, str(tmp_path / "nowhere.csv"), str(source))


def test_recsys_score_never_writes_over_its_input(
    liked_run, small_frame, tmp_path, capsys, monkeypatch
):
    # `recsys score B x.csv x.csv` rewrote the user's table with scores.
    from recsys.cli import main

    bundle, _ = liked_run
    monkeypatch.chdir(tmp_path)
    small_frame.iloc[:10].to_csv("x.csv", index=False)
    before = (tmp_path / "x.csv").read_bytes()
    for output in ("x.csv", "./x.csv", str(tmp_path / "x.csv")):
        assert main(["score", bundle.path, "x.csv", output, "-q"]) == 1
        err = capsys.readouterr().err
        assert f"The output '{output}' is the input 'x.csv'" in err
        assert "Fix: write to another file, e.g. 'x_scored.csv'" in err
    assert (tmp_path / "x.csv").read_bytes() == before
    (tmp_path / "afile").write_text("")
    assert main(["score", bundle.path, "x.csv", "afile/s.csv", "-q"]) == 1
    assert "afile' is a file, not a directory. Fix:" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["afile", "x.csv"]


def test_recsys_score_takes_its_files_as_arguments_or_options(
    liked_run, small_frame, tmp_path, capsys
):
    # `recsys predict` takes --input / --output: a newcomer writes those.
    from recsys.cli import main

    bundle, _ = liked_run
    path = bundle.path
    source = tmp_path / "in.csv"
    small_frame.iloc[:10].to_csv(source, index=False)
    outputs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    assert main(["score", str(path), str(source), str(outputs[0]), "-q"]) == 0
    assert (
        main(
            ["score", str(path), "--input", str(source), "-o", str(outputs[1])]
        )
        == 0
    )
    assert outputs[0].read_text() == outputs[1].read_text()
    assert main(["score", str(path), str(source)]) != 0
    assert "Give the output file once" in capsys.readouterr().err
    assert (
        main(
            [
                "score",
                str(path),
                str(source),
                str(outputs[0]),
                "--output",
                "c.csv",
            ]
        )
        != 0
    )
    assert "a.csv', 'c.csv']." in capsys.readouterr().err


def test_predict_from_several_threads_matches_one_thread(
    rating_run, small_frame
):
    # Keras' predict is not reentrant: unlocked, 79 of 80 calls from 8
    # threads failed, and the bundle stayed broken afterwards.
    from concurrent.futures import ThreadPoolExecutor

    bundle, _ = rating_run
    rows = small_frame.iloc[:64]
    expected = bundle.predict(rows)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: bundle.predict(rows), range(16)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, True])
def test_a_bad_batch_size_is_refused_and_the_bundle_predicts_on(
    rating_run, small_frame, batch_size
):
    # Keras given -1 failed with an UnboundLocalError and left the bundle
    # unable to predict again ("'NoneType' object is not callable").
    bundle, _ = rating_run
    rows = small_frame.iloc[:8]
    with pytest.raises(ValueError, match="`batch_size` must be a positive"):
        bundle.predict(rows, batch_size=batch_size)
    assert bundle.predict(rows).shape == (8,)


def test_loading_a_tabular_bundle_imports_no_tensorflow(rating_run):
    import subprocess
    import sys

    bundle, _ = rating_run
    code = (
        "import sys, recsys; recsys.load_bundle(sys.argv[1]); "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, bundle.path],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr
