"""Tests of benchmarks/_common.py, the helpers every benchmark script uses."""

import importlib.util
import json
import os
import sys

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks"
)


@pytest.fixture(scope="module")
def common():
    # Benchmarks are scripts, not a package: load the helper by its path.
    path = os.path.join(BENCHMARKS, "_common.py")
    spec = importlib.util.spec_from_file_location("_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _python(code):
    return [sys.executable, "-c", code]


def test_child_json_reads_the_last_stdout_line(common):
    code = "print('progress'); print('{\"a\": 1}'); print('{\"b\": [2]}')"
    assert common.child_json(_python(code)) == {"b": [2]}


def test_child_json_passes_the_environment(common):
    code = "import json, os; print(json.dumps({'x': os.environ['H4_X']}))"
    env = {**os.environ, "H4_X": "seen"}
    assert common.child_json(_python(code), env=env) == {"x": "seen"}


def test_child_json_raises_with_the_stderr_tail(common):
    code = "import sys; sys.stderr.write('x' * 5000 + 'the cause'); exit(3)"
    with pytest.raises(common.ChildError, match="exited with 3") as caught:
        common.child_json(_python(code))
    tail = caught.value.stderr_tail
    assert tail.endswith("the cause")
    assert len(tail) == common.STDERR_TAIL


def test_child_json_raises_without_a_json_line(common):
    code = "import sys; print('done'); sys.stderr.write('warned')"
    with pytest.raises(common.ChildError, match="no JSON line") as caught:
        common.child_json(_python(code))
    assert caught.value.stderr_tail == "warned"


def test_child_json_or_error_reports_a_failed_run_as_a_row(common):
    failed = _python("import sys; sys.stderr.write('out of memory'); exit(9)")
    assert common.child_json_or_error(failed) == {"error": "out of memory"}
    assert common.child_json_or_error(_python("print('{}')")) == {}


def test_run_child_raises_on_failure(common):
    with pytest.raises(common.ChildError, match="exited with 1"):
        common.run_child(_python("raise SystemExit(1)"))
    done = common.run_child(_python("print('ok')"))
    assert done.stdout == "ok\n"


def test_script_command_runs_a_script_with_this_python(common):
    command = common.script_command("x.py", "--size", 10, 0.5)
    assert command == [
        sys.executable,
        os.path.abspath("x.py"),
        "--size",
        "10",
        "0.5",
    ]
    assert common.sibling("tfrs_baseline.py") == os.path.join(
        BENCHMARKS, "tfrs_baseline.py"
    )


def test_print_json_one_line_is_what_child_json_reads(common, capsys):
    common.print_json({"a": 1, "b": [1, 2]}, indent=None)
    assert capsys.readouterr().out == '{"a": 1, "b": [1, 2]}\n'
    common.print_json({"a": 1})
    assert json.loads(capsys.readouterr().out) == {"a": 1}


def test_machine_describes_cpus_backend_and_versions(common):
    described = common.machine(backend="tensorflow (tf-keras)")
    assert described["cpus"] == os.cpu_count()
    assert described["backend"] == "tensorflow (tf-keras)"
    assert described["versions"]["recsys"]
    json.dumps(common.machine())  # JSON-ready


def test_peak_mb_is_this_process_peak(common):
    before = common.peak_mb()
    grown = np.ones(64 * 2**20 // 8)  # 64 MB, touched
    assert common.peak_mb() >= before
    assert common.peak_mb() > grown.nbytes / 2**20


def test_config_path_finds_the_shipped_configs(common):
    path = common.config_path("movielens_two_tower.toml")
    assert os.path.isfile(path)


def test_zipf_ids_are_rows_with_their_probabilities(common):
    rng = np.random.default_rng(0)
    ids, probability = common.zipf_ids(rng, 1000, 20_000)
    assert ids.dtype == np.int32 and probability.dtype == np.float32
    assert ids.min() >= 1 and ids.max() < 1000  # row 0 is padding
    # Each id's probability is the same wherever it is drawn, and the
    # probabilities of the distinct ids sum to at most 1.
    unique, first = np.unique(ids, return_index=True)
    for i in unique[:20]:
        assert np.ptp(probability[ids == i]) == 0
    assert probability[first].sum() <= 1.0 + 1e-5
    # Hot ids are drawn about as often as their probability says.
    hot = ids[np.argmax(probability)]
    share = np.mean(ids == hot)
    assert share == pytest.approx(probability.max(), rel=0.1)


def test_public_tables_writes_the_tables_named(common, tmp_path):
    tables = (
        ("carData", "TitanicSurvival", "age"),
        ("AER", "SwissLabor", "participation"),
    )
    written = list(
        common.public_tables(
            tables, ["carData/TitanicSurvival"], str(tmp_path), labelled=True
        )
    )
    assert [w[1] for w in written] == ["TitanicSurvival"]
    _, _, label, frame, path = written[0]
    # Rows without an age are left out; the file holds the rest.
    assert frame[label].notna().all() and len(frame) == 1046
    with open(path) as f:
        assert len(f.readlines()) == len(frame) + 1
    assert len(list(common.public_tables(tables, None, str(tmp_path)))) == 2


def test_seeds_on_split_trains_once_a_seed(common, tmp_path):
    rng = np.random.default_rng(0)
    amount = rng.normal(size=300)
    rows = {"amount": amount, "label": (amount > 0).astype(int)}
    pd.DataFrame(rows).to_csv(tmp_path / "rows.csv", index=False)
    config = tmp_path / "c.toml"
    config.write_text(
        '[data]\nsource = "rows.csv"\nsplit = "random"\nlabel = "label"\n'
        '[features.amount]\nkind = "numeric"\n'
        '[model]\nkind = "tabular"\ntask = "binary"\nfeatures = ["amount"]\n'
        "[train]\nepochs = 2\n"
        '[evaluate]\nbaselines = ["logistic_regression"]\n'
    )
    runs = common.seeds_on_split(str(config), "validation", 2)
    assert runs["metric"] == "auc" and len(runs["seeds"]) == 2
    assert runs["mean"] == pytest.approx(np.mean(runs["seeds"]), abs=1e-4)
    assert all(1 <= e <= 2 for e in runs["best_epochs"])
    assert runs["baseline"] > 0.9  # the label is the sign of the column


def test_init_config_variants_trains_each_variants_config(common, monkeypatch):
    written = []

    def fake_runs(config_path, split, seeds):
        with open(config_path) as f:
            written.append((split, f.read()))
        return {"metric": "auc", "seeds": [0.5] * seeds, "mean": 0.5}

    monkeypatch.setattr(common, "seeds_on_split", fake_runs)
    variants = {"as_written": lambda t: t, "marked": lambda t: t + "# mark\n"}
    tables = (("datasets", "mtcars", "am"),)
    results = common.init_config_variants(tables, variants, seeds=2)
    row = results["datasets/mtcars"]
    assert (row["rows"], row["label"], row["metric"]) == (32, "am", "auc")
    assert row["marked/test"]["seeds"] == [0.5, 0.5]
    assert [split for split, _ in written] == ["validation", "test"] * 2
    # Init's config (its label named), then the variant's edit of it.
    assert 'label = "am"' in written[0][1]
    assert written[2][1] == written[0][1] + "# mark\n"
