"""`recsys evaluate` on tabular bundles: the stored metrics, re-scored."""

import pytest

from recsys.cli import main
from recsys.kinds import get_kind
from recsys.kinds.base import compare_metrics
from recsys.kinds.tabular import summary


def test_evaluate_prints_the_stored_metrics_as_train_does(rating_run, capsys):
    bundle, metrics = rating_run
    assert main(["evaluate", bundle.path]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == summary(metrics, bundle.config).strip()
    assert "rmse" in printed and "bias" in printed


def test_rescoring_reproduces_the_stored_metrics(
    rating_run, small_frame, tmp_path, capsys
):
    bundle, metrics = rating_run
    rescored = get_kind("tabular").rescore(bundle, small_frame)
    assert rescored["num_examples"] == metrics["test"]["num_examples"]
    assert rescored["rmse"] == pytest.approx(metrics["test"]["rmse"], abs=1e-5)
    assert compare_metrics(metrics["test"], rescored) == []

    data = tmp_path / "ratings.parquet"
    small_frame.to_parquet(data, index=False)
    code = main(["evaluate", bundle.path, "--rescore", "--data", str(data)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "re-scored" in printed and "matches metrics.json" in printed


def test_rescoring_other_data_fails_and_says_why(
    rating_run, small_frame, tmp_path, capsys
):
    bundle, _ = rating_run
    changed = small_frame.assign(rating=6.0 - small_frame["rating"])
    data = tmp_path / "changed.parquet"
    changed.to_parquet(data, index=False)
    code = main(["evaluate", bundle.path, "--rescore", "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not reproduce its metrics.json: rmse" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("what", ["missing", "empty_dir", "file", "data"])
def test_evaluate_refuses_what_it_cannot_read(
    what, rating_run, tmp_path, capsys
):
    bundle, _ = rating_run
    argv = {
        "missing": ["evaluate", str(tmp_path / "none")],
        "empty_dir": ["evaluate", str(tmp_path)],
        "file": ["evaluate", __file__],
        "data": ["evaluate", bundle.path, "--data", "x.csv"],
    }[what]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("recsys evaluate: error: ")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
