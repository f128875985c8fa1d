import json
import os
import subprocess
import sys

import pytest

from recsys.cli import main


def _recsys(*args):
    """Runs the installed console entry point in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "recsys.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_train_then_recommend_end_to_end(tmp_path):
    out = tmp_path / "bundle"
    done = _recsys(
        "train", "--output", str(out), "--set", "train.epochs=1", "-q"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hr@100_filtered" in done.stdout and "popularity" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train"]["examples_per_second"] > 0
    assert (
        metrics["test"]["hr@100_filtered"]
        > metrics["baseline_popularity"]["hr@100_filtered"]
    )
    done = _recsys("recommend", str(out), "--user", "1", "-k", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4 and "title" in lines[0]
    assert all(line.split()[0] in "123" for line in lines[1:])


def test_cli_recommend_prints_titles(trained_bundle, capsys):
    bundle, _ = trained_bundle
    assert main(["recommend", bundle.path, "--user", "42", "-k", "5"]) == 0
    out = capsys.readouterr().out
    titles = set(bundle.items.title)
    rows = out.strip().splitlines()[1:]
    assert len(rows) == 5
    assert all(
        any(t in row for t in titles if isinstance(t, str)) for row in rows
    )


def test_cli_recommend_unknown_user_says_so(trained_bundle, capsys):
    bundle, _ = trained_bundle
    assert main(["recommend", bundle.path, "--user", "nobody", "-k", "2"]) == 0
    assert "not in this bundle" in capsys.readouterr().out


def test_cli_evaluate_reproduces_training_metrics(trained_bundle, capsys):
    bundle, metrics = trained_bundle
    assert main(["evaluate", bundle.path]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test"] == metrics["test"]
    assert again["baseline_popularity"] == metrics["baseline_popularity"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--set", "train.epoch=3"], "Unknown config keys in [train]"),
        (
            ["train", "--set", "model.embedding_dim=0"],
            "embedding_dim must be >= 1",
        ),
        (
            ["train", "--set", "data.source='missing.csv'"],
            "Data source not found",
        ),
        (["train", "configs/nope.toml"], "Config file not found"),
        (["recommend", "no/such/bundle", "--user", "1"], "not a recsys bundle"),
        (["evaluate", "no/such/bundle"], "not a recsys bundle"),
    ],
)
def test_cli_errors_exit_1_with_a_clear_message(
    argv, message, capsys, tmp_path
):
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert main([*argv[:1], *argv[1:]]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_recommend_rejects_bad_k(trained_bundle, capsys):
    bundle, _ = trained_bundle
    assert main(["recommend", bundle.path, "--user", "1", "-k", "0"]) == 1
    assert "`k` must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["two_tower", "tabular", "text"])
def test_cli_config_schema_prints_every_default_key(kind, capsys):
    from recsys.config import KIND_DEFAULTS

    assert main(["config-schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    sections = schema["properties"]
    for section, keys in KIND_DEFAULTS[kind].items():
        assert section in sections
        if section == "features":
            continue
        ref = sections[section]["$ref"].rpartition("/")[2]
        assert set(keys) <= set(schema["$defs"][ref]["properties"]), section


def test_cli_config_schema_of_an_unknown_kind_fails(capsys):
    assert main(["config-schema", "nope"]) == 1
    assert "model.kind must be one of" in capsys.readouterr().err
