"""`recsys score` reads every form `recsys train` reads, writes into
folders it makes, and `recsys serve` of a tabular bundle names `--ranker`."""

import os
import pathlib

import numpy as np
import pandas as pd
import pytest

from recsys.cli import main
from recsys.scoring import score_file


def _write(rows, path, form):
    if form == "parquet-dir":
        os.makedirs(path)
        rows.iloc[:7].to_parquet(os.path.join(path, "part-0.parquet"))
        rows.iloc[7:].to_parquet(os.path.join(path, "part-1.parquet"))
    elif form == "indexed":  # the user id as the file's index
        rows.set_index("userId").to_parquet(path)
    elif form == "tsv":
        rows.to_csv(path, sep="\t", index=False)
    elif form == "jsonl":
        rows.to_json(path, orient="records", lines=True)
    else:
        rows.to_csv(path, index=False)


@pytest.mark.parametrize(
    "name, form",
    [
        ("in.csv.gz", "csv"),  # before: "must end in one of" (.parquet, .csv)
        ("in.tsv", "tsv"),
        ("in.jsonl", "jsonl"),
        ("in.csv.xz", "csv"),  # not streamed: read whole, as training reads
        ("shards", "parquet-dir"),
        ("indexed.parquet", "indexed"),  # before: no column 'userId'
    ],
)
def test_every_form_training_reads_is_scored(
    rating_run, small_frame, tmp_path, name, form
):
    bundle, _ = rating_run
    rows = small_frame.iloc[:20]
    source = tmp_path / name
    _write(rows, source, form)
    target = tmp_path / "out.parquet"
    count = score_file(
        bundle, str(source), str(target), batch_size=6, progress=False
    )
    assert count == 20
    out = pd.read_parquet(target).reset_index()
    np.testing.assert_allclose(
        out["score"], bundle.predict(rows), rtol=1e-5, atol=1e-6
    )
    assert out["userId"].tolist() == rows["userId"].tolist()


def test_a_csv_with_empty_trailing_columns_is_scored(
    rating_run, small_frame, tmp_path
):
    # A spreadsheet's trailing `,,`: training reads `Unnamed: N` columns,
    # pyarrow kept two named "" and scoring died (AttributeError).
    bundle, _ = rating_run
    rows = small_frame.iloc[:20]
    lines = rows.to_csv(index=False).splitlines()
    source = tmp_path / "in.csv"
    source.write_text("".join(line + ",,\n" for line in lines))
    target = tmp_path / "out.csv"
    assert score_file(bundle, str(source), str(target), progress=False) == 20
    out = pd.read_csv(target)
    width = len(rows.columns)
    assert list(out.columns[width:]) == [
        f"Unnamed: {width}",
        f"Unnamed: {width + 1}",
        "score",
    ]
    np.testing.assert_allclose(
        out["score"], bundle.predict(rows), rtol=1e-5, atol=1e-6
    )


def test_an_unknown_input_form_lists_the_forms_read(rating_run, tmp_path):
    bundle, _ = rating_run
    source = tmp_path / "rows.xlsx"
    source.write_text("")
    with pytest.raises(ValueError, match=r"expected \.csv, \.tsv, \.json"):
        score_file(bundle, str(source), str(tmp_path / "o.csv"))
    # JSON read whole, as training reads it: a column of numbers and text
    # is named, not an Arrow traceback.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"userId": 1}\n{"userId": "u2"}\n')
    with pytest.raises(ValueError, match="column userId.*Fix: give each"):
        score_file(bundle, str(mixed), str(tmp_path / "o.csv"))


def test_an_output_in_a_missing_folder_is_written_there(
    liked_run, small_frame, tmp_path, capsys, monkeypatch
):
    # Before: "No such file or directory: .../out/.s.csv.676fbd5a.tmp".
    bundle, _ = liked_run
    monkeypatch.chdir(tmp_path)
    small_frame.iloc[:10].to_csv("x.csv", index=False)
    assert main(["score", bundle.path, "x.csv", "out/deep/s.csv", "-q"]) == 0
    assert len(pd.read_csv(tmp_path / "out" / "deep" / "s.csv")) == 10
    assert "scored 10 rows into out/deep/s.csv" in capsys.readouterr().out


def test_serving_a_tabular_bundle_names_the_ranker_option(liked_run, capsys):
    bundle, _ = liked_run
    assert main(["serve", bundle.path]) == 1
    err = capsys.readouterr().err
    assert "is a 'tabular' bundle, not a 'two_tower' bundle" in err
    assert f"recsys serve TWO_TOWER_BUNDLE --ranker {bundle.path}" in err


def test_quiet_is_taken_wherever_verbose_is(liked_run, capsys):
    # `-q` was refused by `recsys -q train`, `evaluate ... -q` and
    # `index ... -q`; `-v` went everywhere.
    bundle, _ = liked_run
    assert main(["evaluate", bundle.path, "-q"]) == 0
    assert main(["-q", "evaluate", bundle.path, "--json"]) == 0
    assert main(["-q", "config-schema", "tabular"]) == 0
    capsys.readouterr()
    assert main(["-q", "serve", bundle.path]) == 1
    assert "--ranker" in capsys.readouterr().err


def test_values_the_model_never_learned_are_counted_once(
    liked_run, small_frame, tmp_path, caplog
):
    # Before: scored without a word (a new category, a spelling of a known
    # one).
    bundle, _ = liked_run
    rows = small_frame.iloc[:10].copy()
    rows["userId"] = rows["userId"].astype(object)
    rows.loc[rows.index[:3], "userId"] = "no-such-user"
    rows.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level("WARNING", logger="recsys.scoring"):
        score_file(
            bundle,
            str(tmp_path / "in.csv"),
            str(tmp_path / "out.csv"),
            batch_size=4,  # three chunks, one warning
            progress=False,
        )
    said = [r.getMessage() for r in caplog.records if "never" in r.message]
    assert len(said) == 1
    assert "'userId' in 3 of 10 rows, e.g. 'no-such-user'" in said[0]
    assert "movieId" not in said[0]


def test_a_stopped_score_leaves_no_temporary_file(
    liked_run, small_frame, tmp_path, request
):
    import glob
    import signal
    import subprocess
    import sys
    import time

    # Before: SIGTERM killed `recsys score` past its cleanup, and every
    # stopped run left a `.out.parquet.<hex>.tmp` beside the output.
    bundle, _ = liked_run
    rows = pd.concat([small_frame] * 40, ignore_index=True)
    rows.to_parquet(tmp_path / "in.parquet")
    process = subprocess.Popen(
        [sys.executable, "-m", "recsys.cli", "score", bundle.path]
        + [str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet")]
        + ["--batch-size", "500", "-q"],
        stderr=subprocess.PIPE,
        text=True,
    )
    request.addfinalizer(process.kill)
    pattern = str(tmp_path / ".out.parquet.*.tmp")
    deadline = time.monotonic() + 60
    while not glob.glob(pattern) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert glob.glob(pattern) == []
    assert not (tmp_path / "out.parquet").exists()


def test_a_row_of_more_fields_deep_in_a_csv_is_one_line(
    liked_run, small_frame, tmp_path, capsys
):
    bundle, _ = liked_run
    path = tmp_path / "in.csv"
    small_frame.to_csv(path, index=False)
    with open(path, "a") as file:
        file.write(",".join(["1"] * (len(small_frame.columns) + 1)) + "\n")
    # Before: pyarrow's ArrowInvalid as a traceback.
    assert main(["score", bundle.path, str(path), str(tmp_path / "o.csv")]) == 1
    assert "Expected 7 columns, got 8" in capsys.readouterr().err


def test_scores_are_not_written_into_the_bundle(
    liked_run, small_frame, tmp_path, capsys
):
    # Before: written over users.parquet, which then failed its checksum.
    bundle, _ = liked_run
    small_frame.iloc[:5].to_csv(tmp_path / "in.csv", index=False)
    inside = os.path.join(bundle.path, "users.parquet")
    before = pathlib.Path(inside).read_bytes()
    assert main(["score", bundle.path, str(tmp_path / "in.csv"), inside]) == 1
    assert "is inside the bundle" in capsys.readouterr().err
    assert pathlib.Path(inside).read_bytes() == before


def test_a_binary_text_label_says_whose_probability_score_is(
    monkeypatch, capsys
):
    import types

    import recsys.bundles
    import recsys.scoring

    # Before: "scored 6 rows" beside a `score` of 'Yes' or of 'No' unsaid.
    bundle = types.SimpleNamespace(classes=["No", "Yes"])
    monkeypatch.setattr(recsys.bundles, "load_bundle", lambda path: bundle)
    monkeypatch.setattr(recsys.scoring, "score_file", lambda *a, **k: 6)
    assert main(["score", "b", "in.csv", "out.csv", "-q"]) == 0
    assert (
        "scored 6 rows into out.csv (score = p('Yes'))"
        in capsys.readouterr().out
    )


def test_csv_ids_written_as_floats_score_as_the_ids_learned(
    liked_run, small_frame, tmp_path, caplog
):
    # Before: a CSV whose ids pandas wrote as floats (`1.0`, the training
    # table's own spelling after a merge) scored every id as unknown;
    # Parquet and JSON floats matched the ids learned.
    bundle, _ = liked_run
    rows = small_frame.iloc[:10].copy()
    rows.to_parquet(tmp_path / "ints.parquet")
    floats = rows.astype({"userId": float, "movieId": float})
    floats.to_csv(tmp_path / "floats.csv", index=False)
    respelled = rows.astype({"userId": object})
    respelled.loc[rows.index[0], "userId"] = "1e0"  # the same number
    respelled.loc[rows.index[1], "userId"] = "None"  # text, kept as it is
    respelled.to_csv(tmp_path / "respelled.csv", index=False)
    with caplog.at_level("WARNING", logger="recsys.scoring"):
        for name in ("ints.parquet", "floats.csv", "respelled.csv"):
            score_file(
                bundle,
                str(tmp_path / name),
                str(tmp_path / f"{name}.out.csv"),
                progress=False,
            )
    expected = pd.read_csv(tmp_path / "ints.parquet.out.csv")["score"]
    scored = pd.read_csv(tmp_path / "floats.csv.out.csv")
    np.testing.assert_allclose(scored["score"], expected, rtol=1e-6)
    assert scored["userId"].tolist() == floats["userId"].tolist()  # as read
    said = [r.getMessage() for r in caplog.records if "never" in r.message]
    assert len(said) == 1  # of three files: the "None" alone
    assert "'userId' in 1 of 10 rows, e.g. 'None'." in said[0]
    respelled_scores = pd.read_csv(tmp_path / "respelled.csv.out.csv")["score"]
    np.testing.assert_allclose(
        respelled_scores.drop(index=1), expected.drop(index=1), rtol=1e-6
    )


def test_a_parquet_naming_a_column_twice_is_refused_by_score(
    liked_run, small_frame, tmp_path
):
    # Before: "Cannot construct a Series from a DataFrame."
    import pyarrow as pa
    import pyarrow.parquet as pq

    bundle, _ = liked_run
    rows = small_frame.iloc[:5]
    table = pa.Table.from_pandas(rows, preserve_index=False)
    table = table.append_column("userId", pa.array(rows["userId"] * 2))
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.raises(ValueError, match="in.parquet names the column 'userI"):
        score_file(
            bundle, str(tmp_path / "in.parquet"), str(tmp_path / "o.csv")
        )
