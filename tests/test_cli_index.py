"""`recsys index BUNDLE --items FILE`: new items without retraining."""

import json
import shutil

import pandas as pd
import pytest

from recsys import Bundle
from recsys.cli import main


@pytest.fixture
def copied(trained_bundle, tmp_path):
    """A copy of the session's bundle, free to be replaced."""
    path = tmp_path / "bundle"
    shutil.copytree(trained_bundle[0].path, path)
    return str(path)


def _write_items(path, rows):
    frame = pd.DataFrame(rows, columns=["movieId", "genres", "year", "title"])
    frame.to_csv(path, index=False)
    return str(path)


def test_cli_index_replaces_the_bundle_in_place(copied, tmp_path, capsys):
    before = Bundle.load(copied)
    items = _write_items(
        tmp_path / "new.csv",
        [
            (20_000_001, "Animation|Children", 2024, "New film"),
            (1, "Animation|Children|Comedy", 1995, "Toy Story (updated)"),
        ],
    )
    assert main(["index", copied, "--items", items, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["new"], done["updated"]) == (1, 1)
    assert done["num_items"] == len(before.item_ids) + 1
    after = Bundle.load(copied)
    assert after.version == done["version"] != before.version
    assert after.item_ids[-1] == 20_000_001
    assert after.items["title"].iloc[after.item_rows([1])[0]] == (
        "Toy Story (updated)"
    )
    assert main(["recommend", copied, "--user", "1", "-k", "3"]) == 0


def test_cli_index_writes_another_bundle_with_output(copied, tmp_path, capsys):
    before = Bundle.load(copied)
    items = tmp_path / "new.jsonl"
    items.write_text(
        '{"movieId": 20000002, "genres": "Horror", "year": 1980}\n'
    )
    output = str(tmp_path / "grown")
    assert main(["index", copied, "--items", str(items), "-o", output]) == 0
    out = capsys.readouterr().out
    assert "added 1 new item and updated 0" in out and output in out
    assert Bundle.load(copied).version == before.version  # left alone
    assert Bundle.load(output).item_ids[-1] == 20_000_002


def test_cli_index_refuses_items_without_the_candidate_features(
    copied, tmp_path, capsys
):
    items = tmp_path / "ids.csv"
    items.write_text("movieId\n20000003\n")
    assert main(["index", copied, "--items", str(items)]) == 1
    err = capsys.readouterr().err
    assert "recsys index: error:" in err and "'genres'" in err


def test_cli_index_refuses_a_foreign_output_before_reading_items(
    copied, tmp_path, capsys
):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    # Items it cannot read: refused for the output first, not for them.
    missing = str(tmp_path / "no-such-items.csv")
    assert main(["index", copied, "--items", missing, "-o", str(mine)]) == 1
    assert "not a recsys bundle" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "precious"


def test_cli_index_names_a_missing_items_file_by_its_option(
    copied, tmp_path, capsys
):
    missing = str(tmp_path / "no-such-items.csv")
    assert main(["index", copied, "--items", missing]) == 1
    err = capsys.readouterr().err
    # Not the message of a config's data.source.
    assert f"--items {missing!r}: no such file" in err
    assert "data.source" not in err


def test_evaluate_says_the_catalog_grew_after_training(
    copied, tmp_path, caplog
):
    from recsys.kinds.two_tower import _added_items_note

    items = _write_items(
        tmp_path / "new.csv", [(20_000_004, "Drama", 2024, "New film")]
    )
    assert main(["index", copied, "--items", items, "-q"]) == 0
    with caplog.at_level("WARNING", logger="recsys.kinds.two_tower"):
        _added_items_note(Bundle.load(copied))  # what `recsys evaluate` says
    assert "1 item added by `recsys index` after training" in caplog.text


def _relabelled(bundle, kind, path):
    """A copy of `bundle` whose manifest says `kind`: a bundle of another
    kind, as `check_output` sees one."""
    shutil.copytree(bundle, path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "kind": kind}))
    return path


def test_outputs_of_another_kind_are_refused_not_replaced(
    copied, tmp_path, capsys
):
    # An -o mistyped to another model's bundle: its files are kept.
    ranker = _relabelled(copied, "tabular", tmp_path / "ranker")
    kept = sorted(p.name for p in ranker.iterdir())
    row = (20_000_004, "Horror", 1980, "x")
    items = _write_items(tmp_path / "new.csv", [row])
    assert main(["index", copied, "--items", items, "-o", str(ranker)]) == 1
    err = capsys.readouterr().err
    assert f"{ranker} holds a tabular bundle; refusing to replace it" in err
    # Before training, not after it.
    argv = ["train", "configs/movielens_rating.toml", "-o", copied, "-q"]
    assert main(argv) == 1
    assert f"{copied} holds a two_tower bundle" in capsys.readouterr().err
    assert sorted(p.name for p in ranker.iterdir()) == kept
    Bundle.load(copied)  # whole
