import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recsys.cli import main
from recsys.cli import out_of_memory
from recsys.init_config import init_config


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
        "train",
        "--output",
        str(out),
        "--set",
        "train.epochs=1",
        # EASE and item-kNN cost ~10 s here; tests/baselines covers them.
        "--set",
        "evaluate.baselines=['popularity']",
        "-q",
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
    said = capsys.readouterr()
    # Notes on stderr: stdout is the table alone.
    assert said.out.splitlines()[0].split() == [
        "rank",
        "movieId",
        "score",
        "title",
    ]
    out = said.err
    assert "not in this bundle" in out and "ids are numbers" not in out
    # Text for a bundle of integer ids: why it can be no user (a --users
    # file refuses the line).
    assert "(its user ids are integers (int64): 'nobody' can be" in out
    # A spelling with zeros of a known number: said.
    assert main(["recommend", bundle.path, "--user", "042", "-k", "2"]) == 0
    assert (
        "(user '42' is: the ids are numbers here.)" in capsys.readouterr().err
    )


def test_cli_evaluate_reproduces_training_metrics(second_bundle, capsys):
    bundle, metrics = second_bundle, second_bundle.metrics
    assert main(["evaluate", bundle.path, "--json"]) == 0
    out, err = capsys.readouterr()
    again = json.loads(out)
    assert again["test"] == metrics["test"]
    assert "not the table the bundle was trained on" not in err
    assert again["baseline_popularity"] == metrics["baseline_popularity"]
    # Without --json, the table `recsys train` printed.
    assert main(["evaluate", bundle.path]) == 0
    table = capsys.readouterr().out
    hr10 = f"hr@10_filtered{metrics['test']['hr@10_filtered']:>14.4f}"
    assert "HR@k on the test split" in table and hr10 in table


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


def test_cli_recommend_prints_only_the_items_left(trained_bundle, capsys):
    # k as large as the catalog: the user's training items are excluded,
    # so fewer are left, and the list says so instead of padding it.
    bundle, _ = trained_bundle
    size = len(bundle.item_ids)
    assert (
        main(["recommend", bundle.path, "--user", "42", "-k", str(size)]) == 0
    )
    out, err = capsys.readouterr()
    left = size - len(set(bundle.seen(bundle.user_row(42)).tolist()))
    assert f"has seen all but {left:,} of the {size:,} items" in err
    assert "-inf" not in out and len(out.splitlines()) == left + 1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-k", "0"], "-k must be a positive integer. Received: 0"),
        (["--all", "-o", "r.parquet", "-k", "-2"], "-k must be a positive"),
        (["--rerank", "R", "--candidates", "0"], "--candidates must be a"),
        (["--rerank", "R", "--blend", "1.5"], "--blend must be a number in"),
        (["--rerank", "R", "--blend", "nan"], "--blend must be a number in"),
        # `recsys serve`'s name for the ranker is taken too.
        (["--ranker", "R", "--blend", "-1"], "--blend must be a number in"),
        # Ignored without a word, where they did nothing.
        (["--blend", "0.5"], "--blend set how --rerank reranks; without"),
        (["--candidates", "50", "--blend", "0"], "--candidates and --blend"),
        (["-o", "r.parquet"], "--output is the file --all (or --users)"),
    ],
)
def test_cli_recommend_refuses_options_by_their_flags(
    trained_bundle, extra, message, capsys
):
    bundle, _ = trained_bundle
    user = [] if "--all" in extra else ["--user", "1"]
    assert main(["recommend", bundle.path, *user, *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and "`" not in err


def test_cli_predict_text_refuses_an_output(tmp_path, capsys):
    argv = ["predict", str(tmp_path), "--text", "hi", "-o", "out.csv"]
    assert main(argv) == 1
    assert "--text's classes are printed" in capsys.readouterr().err


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


def test_cli_recommend_all_writes_every_user(trained_bundle, tmp_path, capsys):
    bundle, _ = trained_bundle
    out = tmp_path / "recs.parquet"
    argv = ["recommend", bundle.path, "--all", "-o", str(out), "-k", "3"]
    assert main([*argv, "-q"]) == 0
    assert f"for {len(bundle.user_ids):,} users" in capsys.readouterr().out
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["userId", "rank", "movieId", "score"]
    assert len(frame) == 3 * len(bundle.user_ids)


def test_cli_recommend_users_file_with_an_unknown_user(
    trained_bundle, tmp_path, capsys
):
    bundle, _ = trained_bundle
    users = tmp_path / "users.csv"
    # 999999: no user of the bundle, whose ids are integers.
    users.write_text("userId\n42\n999999\n1\n")
    out = tmp_path / "recs.parquet"
    argv = ["recommend", bundle.path, "--users", str(users), "-o", str(out)]
    assert main([*argv, "-k", "4", "-q", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["users"], done["known_users"], done["rows"]) == (3, 2, 12)
    frame = pd.read_parquet(out)
    assert frame["userId"].tolist()[::4] == [42, 999999, 1]
    ids, _ = bundle.recommend([42, 999999, 1], k=4)
    assert frame["movieId"].tolist() == ids.ravel().tolist()


def test_cli_recommend_all_never_writes_over_its_inputs(
    trained_bundle, tmp_path, capsys
):
    bundle, _ = trained_bundle
    users = tmp_path / "users.parquet"
    pd.DataFrame({"userId": [1, 2]}).to_parquet(users)
    before = users.read_bytes()
    argv = ["recommend", bundle.path, "--users", str(users), "-q"]
    assert main([*argv, "-o", str(users)]) == 1
    assert "is the --users file" in capsys.readouterr().err
    assert users.read_bytes() == before
    # Inside the bundle: its files are checked by sha256 at load.
    inside = os.path.join(bundle.path, "items.parquet")
    assert main([*argv, "-o", inside]) == 1
    assert "is inside the bundle" in capsys.readouterr().err
    from recsys import load_bundle

    assert load_bundle(bundle.path).item_ids.size
    # A blank users file, and an output whose folders do not exist yet.
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    argv = [
        "recommend",
        bundle.path,
        "-q",
        "-o",
        str(tmp_path / "new/r.parquet"),
    ]
    assert main([*argv, "--users", str(blank)]) == 1
    assert "holds no user id" in capsys.readouterr().err
    assert main([*argv, "--users", str(users)]) == 0
    assert len(pd.read_parquet(tmp_path / "new/r.parquet")) == 20


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "Give --user USER, or --all"),
        (["--user", "1", "--all", "-o", "r.parquet"], "give one of them"),
        (["--all"], "--all needs --output"),
        (["--all", "-o", "recs.csv"], "must end in .parquet"),
        (["--all", "-o", "r.parquet", "--rerank", "x"], "--rerank works"),
    ],
)
def test_cli_recommend_all_errors(trained_bundle, extra, message, capsys):
    bundle, _ = trained_bundle
    assert main(["recommend", bundle.path, *extra]) == 1
    assert message in capsys.readouterr().err


def test_cli_recommend_json(trained_bundle, capsys):
    bundle, _ = trained_bundle
    argv = ["recommend", bundle.path, "--user", "42", "-k", "5", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    ids, scores = bundle.recommend(["42"], k=5)
    assert printed["user"] == "42" and printed["known"] is True
    assert printed["items"] == ids[0].tolist()
    assert printed["scores"] == pytest.approx(scores[0].tolist())


def test_cli_evaluate_json(second_bundle, capsys):
    bundle, metrics = second_bundle, second_bundle.metrics
    assert main(["evaluate", bundle.path, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test"] == metrics["test"]


@pytest.fixture
def fake_training(trained_bundle, monkeypatch):
    """`recsys train` of the two-tower kind answers the session's bundle at
    once, printing an epoch line on stdout as Keras does."""
    from recsys.kinds import get_kind

    bundle, metrics = trained_bundle

    def train(self, config, output, *, progress=True):
        sys.stdout.write("Epoch 1/1 - loss: 0.1\n")
        return bundle, metrics

    monkeypatch.setattr(type(get_kind("two_tower")), "train", train)
    return bundle, metrics


def test_cli_train_prints_the_table_or_json(fake_training, tmp_path, capsys):
    bundle, metrics = fake_training
    argv = ["train", "-o", str(tmp_path / "run"), "-q"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "hr@100_filtered" in printed.out
    assert f"bundle: {bundle.path}" in printed.out
    # The results alone: `recsys train CONFIG > results.txt` (README).
    assert "Epoch 1/1" not in printed.out and "Epoch 1/1" in printed.err

    assert main([*argv, "--json"]) == 0
    printed = capsys.readouterr()
    # stdout holds the JSON document alone; training's lines go to stderr.
    assert json.loads(printed.out) == json.loads(
        json.dumps({"bundle": bundle.path, "metrics": metrics})
    )
    assert "Epoch 1/1" in printed.err


def test_cli_evaluate_json_of_a_tabular_bundle(monkeypatch):
    from types import SimpleNamespace

    from recsys.kinds import get_kind

    kind = get_kind("tabular")
    stored = {"auc": 0.75, "num_examples": 10}
    bundle = SimpleNamespace(
        path="run",
        config={"evaluate": {"split": "test"}, "model": {"task": "binary"}},
        metrics={
            "test": stored,
            "train": {"seconds": 1.0, "best_epoch": 1, "backend": "jax"},
        },
    )
    assert kind.evaluate_document(bundle, frame=None, rescore=False) == {
        "bundle": "run",
        "metrics": bundle.metrics,
    }
    monkeypatch.setattr(kind, "rescore", lambda bundle, frame: dict(stored))
    document = kind.evaluate_document(bundle, frame=None, rescore=True)
    assert document["rescored"] == stored
    monkeypatch.setattr(
        kind, "rescore", lambda bundle, frame: {**stored, "auc": 0.5}
    )
    with pytest.raises(ValueError, match="does not reproduce"):
        kind.evaluate_document(bundle, frame=None, rescore=True)
    with pytest.raises(ValueError, match="add --rescore"):
        kind.evaluate_document(bundle, frame=object(), rescore=False)


def test_cli_evaluate_rescore_of_a_two_tower_bundle_checks_the_numbers(
    second_bundle, monkeypatch, capsys
):
    from recsys.kinds.two_tower import TwoTowerKind

    path = second_bundle.path
    assert main(["evaluate", path, "--rescore", "--json"]) == 0
    rescore = TwoTowerKind.rescore

    def other_numbers(self, bundle, frame):
        metrics = rescore(self, bundle, frame)
        return {**metrics, "test": {**metrics["test"], "hr@10": 0.0}}

    monkeypatch.setattr(TwoTowerKind, "rescore", other_numbers)
    # Before: accepted, and exit status 0 on any numbers.
    assert main(["evaluate", path, "--rescore"]) == 1
    assert "does not reproduce its metrics.json: hr@10" in (
        capsys.readouterr().err
    )
    assert main(["evaluate", path]) == 0  # recomputed, not checked


def test_cli_version(capsys):
    from recsys import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"recsys {__version__}"


def test_python_m_recsys_runs_the_cli():
    from recsys import __version__

    done = subprocess.run(
        [sys.executable, "-m", "recsys", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"recsys {__version__}"


def test_out_of_memory_errors_say_what_failed_to_allocate():
    jax_like = RuntimeError(
        "INTERNAL: Error dispatching computation: " * 3
        + "Out of memory allocating 640003200004 bytes."
    )
    assert out_of_memory(jax_like) == (
        "Out of memory allocating 640003200004 bytes"
    )
    tf_like = RuntimeError(
        "{{function_node __wrapped}} RESOURCE_EXHAUSTED: OOM when allocating "
        "tensor with shape[400000,400000]"
    )
    assert out_of_memory(tf_like).startswith("RESOURCE_EXHAUSTED: OOM when")
    assert out_of_memory(MemoryError()) == "MemoryError"
    assert out_of_memory(RuntimeError("shapes do not match")) is None


def test_the_cli_answers_an_allocation_failure_in_one_line(monkeypatch, capsys):
    def run(args):
        raise MemoryError("Unable to allocate 29.0 TiB for an array")

    monkeypatch.setattr("recsys.cli.cmd_init", run)  # read by main's parser
    assert main(["init", "two_tower", "--data", "x.csv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "recsys init: error: out of memory (Unable to allocate 29.0 TiB"
    )
    assert "model.embedding_dim" in err and "Traceback" not in err
    # Synthetic data has no config: its own flags are the fix.
    monkeypatch.setattr("recsys.cli.cmd_synth", run)
    assert main(["synth", "shards"]) == 1
    err = capsys.readouterr().err
    assert "Fix: lower --users, --items or --interactions." in err


def test_evaluate_of_a_bundle_whose_table_moved_says_to_pass_it(
    tmp_path, capsys
):
    rng = np.random.default_rng(0)
    rows = 300
    table = tmp_path / "events.csv"
    pd.DataFrame(
        {
            "user_id": rng.integers(0, 20, rows),
            "item_id": rng.integers(0, 15, rows),
            "timestamp": np.arange(rows),
        }
    ).to_csv(table, index=False)
    config = tmp_path / "events.toml"
    config.write_text(init_config("two_tower", str(table), source=str(table)))
    bundle = str(tmp_path / "bundle")
    argv = ["train", str(config), "--output", bundle, "-q"]
    assert main([*argv, "--set", "train.epochs=1"]) == 0
    moved = tmp_path / "moved.csv"
    table.rename(moved)
    assert main(["evaluate", bundle]) == 1
    assert "Fix: pass the table with --data FILE." in capsys.readouterr().err
    assert main(["evaluate", bundle, "--data", str(moved)]) == 0
    assert "not the table" not in capsys.readouterr().err
    # The table refreshed with newer rows: its split holds rows the model
    # trained on, and the metrics rose without a word.
    grown = pd.read_csv(moved)
    newer = grown.sample(100, random_state=0).assign(
        timestamp=np.arange(rows, rows + 100)
    )
    pd.concat([grown, newer]).to_csv(tmp_path / "grown.csv", index=False)
    argv = ["evaluate", bundle, "--data", str(tmp_path / "grown.csv")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "the bundle's training split into 232 and 68" in err, err
    assert "not the table the bundle was trained on" in err
    # Another table, without the time column: named, as training names it.
    pd.read_csv(moved).drop(columns="timestamp").to_csv(table, index=False)
    assert main(["evaluate", bundle, "--data", str(table)]) == 1
    err = capsys.readouterr().err
    assert "'timestamp'" in err and "missing key" not in err, err


def test_a_backend_that_cannot_run_the_command_is_one_line(monkeypatch, capsys):
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        # Before: Keras' 40-line traceback of its torch import.
        monkeypatch.setenv("KERAS_BACKEND", "torch")
        assert main(["evaluate", "no-such-bundle"]) == 1
        assert "KERAS_BACKEND=torch needs torch" in capsys.readouterr().err
    # Before: the numpy backend read the data, then failed in `fit`.
    monkeypatch.setenv("KERAS_BACKEND", "numpy")
    assert main(["train", "configs/movielens_rating.toml", "-q"]) == 1
    assert "KERAS_BACKEND=numpy cannot train" in capsys.readouterr().err
    # Before: Keras' "Unable to import backend : bogus".
    monkeypatch.setenv("KERAS_BACKEND", "bogus")
    assert main(["train", "configs/movielens_rating.toml", "-q"]) == 1
    assert "KERAS_BACKEND=bogus is not a Keras backend (one of jax," in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "-o", ""],
        ["tune", "--output", ""],
        ["synth", ""],
    ],
)
def test_cli_an_empty_output_path_is_refused(
    argv, tmp_path, capsys, monkeypatch
):
    # Before: `recsys train -o "$OUT"` with OUT unset wrote to
    # artifacts/<config> and exited 0.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert "path is empty" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "artifacts")


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    # `recsys evaluate --json | head` said "error: Broken pipe", status 1.
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    command = [sys.executable, "-m", "recsys", "config-schema", "tabular"]
    done = subprocess.run(command, stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    assert done.returncode == 141
    assert done.stderr == b""


def test_json_output_writes_nan_and_infinity_as_null(capsys):
    # An AUC of a test split of one class printed a bare NaN: not JSON to
    # a strict parser.
    from recsys.cli import _print_json

    _print_json(
        {"test": {"auc": float("nan"), "rmse": np.float32("inf")}, "k": [1.5]}
    )

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    document = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert document == {"test": {"auc": None, "rmse": None}, "k": [1.5]}


def test_cli_score_of_a_two_tower_bundle_names_the_command_to_use(
    trained_bundle, tmp_path, capsys
):
    bundle, _ = trained_bundle
    rows = tmp_path / "rows.csv"
    rows.write_text("userId,movieId\n1,1\n")
    argv = ["score", bundle.path, str(rows), str(tmp_path / "out.csv")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{bundle.path} is a 'two_tower' bundle; recsys score reads" in err
    assert f"Fix: recsys recommend {bundle.path} --user USER" in err
    assert not (tmp_path / "out.csv").exists()


def test_cli_init_refuses_force_without_an_output(capsys):
    assert main(["init", "two_tower", "--data", "movielens", "--force"]) == 1
    said = capsys.readouterr()
    assert "--force replaces the --output file" in said.err and not said.out


def test_cli_init_names_a_missing_table_by_its_option(tmp_path, capsys):
    missing = str(tmp_path / "nope.csv")
    argv = ["init", "two_tower", "--data", missing, "-o", str(tmp_path / "c")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    # Not a config's data.source (read from the config file's directory).
    assert f"--data {missing!r}: no such file or directory" in err
    assert "data.source" not in err and not (tmp_path / "c").exists()


def test_a_command_stopped_by_ctrl_c_says_so(monkeypatch, capsys):
    # Before: exit status 130 without a word (a tabular training,
    # `recommend --all`), as if the command had finished.
    import signal

    def ctrl_c(path):
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr("recsys.bundles.load_bundle", ctrl_c)
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "some-bundle"])
    assert stop.value.code == 130
    assert "recsys evaluate: stopped (Ctrl-C)." in capsys.readouterr().err
