"""Hostile bundles: each is refused with one line naming the file.

Every test copies the session's trained bundle, breaks one thing and
loads it. Where a broken file would crash ScaNN (a segfault kills the
process), ScaNN's `load_searcher` is replaced by a function that fails the
test, so the refusal must come before ScaNN reads anything.
"""

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from recsys import Bundle
from recsys.bundles import load_bundle
from recsys.bundles.tabular import TabularBundle
from recsys.bundles.two_tower import BundleError
from recsys.bundles.two_tower import spec_hash
from recsys.storage.files import BundleFiles
from recsys.storage.files import file_digests

SCANN = "index/scann"


class _Payload:
    """Unpickling this writes the marker file: code run from a bundle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        code = f"open({str(self.marker)!r}, 'w').write('pwned')"
        return (exec, (code,))


@pytest.fixture
def no_scann_load(monkeypatch):
    """Fails the test if ScaNN is handed any directory to load."""
    from scann import scann_ops_pybind

    def refuse(*args, **kwargs):
        raise AssertionError("ScaNN was reached with unchecked files")

    monkeypatch.setattr(scann_ops_pybind, "load_searcher", refuse)


def _resign(path):
    """Rewrites the manifest's checksums, as a careful attacker would."""
    manifest_path = os.path.join(path, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    manifest["files"] = file_digests(path, exclude=("manifest.json",))
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


def _save(path, name, array, resign=True):
    np.save(os.path.join(path, name), array, allow_pickle=False)
    if resign:
        _resign(path)


def _load_refused(path, match):
    with pytest.raises(BundleError, match=match) as info:
        Bundle.load(str(path))
    assert "\n" not in str(info.value)
    return str(info.value)


# -- code execution: pickles and paths out of the bundle ----------------------


@pytest.mark.parametrize("resign", [False, True])
def test_pickled_docids_are_refused_and_never_run(resign, copy, tmp_path):
    marker = tmp_path / "marker"
    with open(copy / SCANN / "scann_docids.pkl", "wb") as f:
        pickle.dump(_Payload(marker), f)
    if resign:
        _resign(copy)
    _load_refused(copy, "scann_docids.pkl")
    assert not marker.exists()


@pytest.mark.parametrize(
    "asset_path",
    ["/etc/passwd", "../../../etc/passwd", "../../item_embeddings.npy"],
)
def test_asset_paths_out_of_the_bundle_are_refused(
    asset_path, copy, no_scann_load
):
    assets = copy / SCANN / "scann_assets.pbtxt"
    text = assets.read_text().replace('"dataset.npy"', f'"{asset_path}"')
    assets.write_text(text)
    _resign(copy)
    _load_refused(copy, "scann_assets.pbtxt")


def test_the_assets_file_must_hold_only_assets(copy, no_scann_load):
    assets = copy / SCANN / "scann_assets.pbtxt"
    assets.write_text(assets.read_text() + "\nsomething_else: 1\n")
    _resign(copy)
    _load_refused(copy, "scann_assets.pbtxt")


# -- arrays that crash ScaNN or answer wrongly --------------------------------


def _scann_case(name, change):
    def mutate(path):
        array = np.load(os.path.join(path, SCANN, name))
        _save(os.path.join(path, SCANN), name, change(array), resign=False)

    return pytest.param(f"{SCANN}/{name}", mutate, id=f"{name}-{change.id}")


def _named(function, name):
    function.id = name
    return function


EMPTY = _named(lambda a: a[:0], "empty")
SHORT = _named(lambda a: a[:-1], "short")
LONG = _named(lambda a: np.concatenate([a, a[:1]]), "long")


def _set(array, value):
    array = array.copy()
    array.flat[-1] = value
    return array


def _bundle_case(name, change, id):
    def mutate(path):
        array = np.load(os.path.join(path, name))
        _save(path, name, change(array), resign=False)

    return pytest.param(name, mutate, id=id)


@pytest.mark.parametrize(
    "name, mutate",
    [
        _scann_case("dataset.npy", EMPTY),
        _scann_case("dataset.npy", SHORT),
        _scann_case("dataset.npy", _named(lambda a: a * 2, "other-values")),
        _scann_case("datapoint_to_token.npy", EMPTY),
        _scann_case("datapoint_to_token.npy", SHORT),
        _scann_case("datapoint_to_token.npy", LONG),
        _scann_case(
            "datapoint_to_token.npy",
            _named(lambda a: _set(a, 10**6), "token-past-last-leaf"),
        ),
        _scann_case(
            "datapoint_to_token.npy",
            _named(lambda a: _set(a, -1), "negative-token"),
        ),
        _scann_case(
            "datapoint_to_token.npy",
            _named(lambda a: a.astype(np.int64), "int64"),
        ),
        _scann_case("hashed_dataset.npy", EMPTY),
        _scann_case("hashed_dataset.npy", SHORT),
        _scann_case(
            "hashed_dataset.npy", _named(lambda a: _set(a, 200), "code-16+")
        ),
        _scann_case(
            "hashed_dataset.npy", _named(lambda a: a[:, :-1], "narrow")
        ),
        _bundle_case("item_embeddings.npy", SHORT, "item-embeddings-short"),
        _bundle_case(
            "item_embeddings.npy",
            lambda a: _set(a, np.nan),
            "item-embeddings-nan",
        ),
        _bundle_case("user_embeddings.npy", EMPTY, "user-embeddings-empty"),
        _bundle_case(
            "item_ids.npy", lambda a: _set(a, a[0]), "duplicate-item-ids"
        ),
        _bundle_case(
            "user_ids.npy", lambda a: _set(a, a[0]), "duplicate-user-ids"
        ),
        # A lone surrogate: pyarrow's UnicodeEncodeError, named no file.
        _bundle_case(
            "item_ids.npy",
            lambda a: _set(a.astype("<U8"), "\ud800"),
            "surrogate-item-id",
        ),
        _bundle_case(
            "item_popularity.npy", lambda a: _set(a, np.nan), "nan-popularity"
        ),
        _bundle_case(
            "item_popularity.npy", lambda a: _set(a, -1), "negative-popularity"
        ),
        _bundle_case("seen_indptr.npy", SHORT, "short-seen-indptr"),
        _bundle_case(
            "seen_indptr.npy", lambda a: _set(a, a[-1] + 5), "indptr-past-end"
        ),
        _bundle_case(
            "seen_indptr.npy", lambda a: a[::-1].copy(), "indptr-decreasing"
        ),
        _bundle_case(
            "seen_items.npy", lambda a: _set(a, 10**7), "seen-item-past-end"
        ),
    ],
)
def test_bad_arrays_are_refused_before_scann(name, mutate, copy, no_scann_load):
    mutate(copy)
    _resign(copy)
    _load_refused(copy, os.path.basename(name))


def test_a_pickled_object_array_is_refused_unread(copy, tmp_path):
    marker = tmp_path / "marker"
    array = np.array([_Payload(marker)] * 3, dtype=object)
    np.save(copy / "item_ids.npy", array, allow_pickle=True)
    _resign(copy)
    _load_refused(copy, "item_ids.npy holds dtype object")
    assert not marker.exists()


@pytest.mark.parametrize(
    "name", ["serialized_partitioner.pb", "ah_codebook.pb", "scann_config.pb"]
)
def test_corrupt_scann_protos_are_refused_before_scann(
    name, copy, no_scann_load
):
    path = copy / SCANN / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _resign(copy)
    _load_refused(copy, name)


def test_a_config_other_than_the_options_is_refused(copy, no_scann_load):
    meta = json.loads((copy / "index/index.json").read_text())
    meta["options"]["num_leaves"] -= 1
    (copy / "index/index.json").write_text(json.dumps(meta))
    _resign(copy)
    _load_refused(copy, "scann_config.pb is not the ScaNN config")


@pytest.mark.parametrize(
    "option, value",
    [
        ("reorder", 10**9),
        ("num_leaves", 10**6),
        ("num_leaves", "5"),
        # ScaNN's config holds it as an int32 (a protobuf ParseError).
        ("training_sample_size", 10**18),
        # Unknown options named like the function's own arguments: a
        # TypeError traceback before.
        ("count", 5),
        ("dims", 8),
    ],
)
def test_absurd_index_options_are_refused(option, value, copy, no_scann_load):
    meta = json.loads((copy / "index/index.json").read_text())
    meta["options"][option] = value
    (copy / "index/index.json").write_text(json.dumps(meta))
    _resign(copy)
    _load_refused(copy, f"Bad options in .*index.json: .*\\b{option}\\b")


def test_a_truncated_npy_is_refused(copy, no_scann_load):
    path = copy / SCANN / "dataset.npy"
    path.write_bytes(path.read_bytes()[:-100])
    _resign(copy)
    _load_refused(copy, "dataset.npy is truncated")


def test_short_scann_dataset_crashes_nothing_in_a_subprocess(copy):
    # End to end, with the real ScaNN: the old loader segfaulted here.
    name = copy / SCANN / "dataset.npy"
    np.save(name, np.load(name)[:10], allow_pickle=False)
    _resign(copy)
    result = _recommend(copy)
    assert result.returncode == 1, result.stderr
    lines = _error_lines(result)
    assert len(lines) == 1 and "dataset.npy" in lines[0], lines


# -- special files, extra files, checksums ------------------------------------


def _load_in_thread(path, timeout=60):
    outcome = {}

    def run():
        try:
            outcome["bundle"] = Bundle.load(str(path))
        except BaseException as error:  # reported to the test below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "Bundle.load hung"
    return outcome


def test_a_fifo_is_refused_without_hanging(copy):
    os.remove(copy / "preprocessor.json")
    os.mkfifo(copy / "preprocessor.json")
    outcome = _load_in_thread(copy)
    assert isinstance(outcome.get("error"), BundleError)
    assert "preprocessor.json is a FIFO" in str(outcome["error"])


def test_a_fifo_is_refused_when_read_directly(copy):
    # Past the directory walk (a FIFO swapped in later): `read` refuses it.
    files, manifest = BundleFiles.open(str(copy), "manifest.json")
    with files:
        files.files = manifest["files"]
        os.remove(copy / "preprocessor.json")
        os.mkfifo(copy / "preprocessor.json")
        with pytest.raises(BundleError, match="preprocessor.json is a FIFO"):
            files.read("preprocessor.json")


@pytest.mark.parametrize(
    "name", ["preprocessor.json", "item_embeddings.npy", "index"]
)
def test_symlinks_are_refused(name, copy):
    target = "/dev/zero" if name != "index" else "/etc"
    shutil.rmtree(copy / name) if name == "index" else os.remove(copy / name)
    os.symlink(target, copy / name)
    outcome = _load_in_thread(copy)
    assert isinstance(outcome.get("error"), BundleError)
    assert f"{name} is a symlink" in str(outcome["error"])


@pytest.mark.parametrize(
    "name", ["notes.txt", "index/extra.npy", f"{SCANN}/int8_dataset.npy"]
)
def test_unlisted_files_are_refused(name, copy, no_scann_load):
    (copy / name).write_bytes(b"anything")
    _load_refused(copy, name)
    _resign(copy)  # listed in the manifest, still not a bundle file
    _load_refused(copy, name)


def test_one_flipped_byte_is_refused(copy, no_scann_load):
    path = copy / "item_embeddings.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    _load_refused(copy, "item_embeddings.npy does not match the sha256")


def test_a_bundle_without_checksums_is_refused(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"]
    manifest["format_version"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    message = _load_refused(copy, "format_version 1")
    # An upgrade's message: what to run, and where the old settings are.
    assert "Fix: retrain it with this recsys, `recsys train CONFIG`" in message
    assert 'under "config" in' in message
    manifest["format_version"] = 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _load_refused(copy, "no valid `files` list")


def test_a_file_over_its_cap_is_refused(copy, monkeypatch):
    from recsys.storage import files as bundle_files

    monkeypatch.setitem(bundle_files.MAX_BYTES, ".keras", 1000)
    _load_refused(copy, "query_tower.keras is .* over the 1000-byte limit")


# -- one consistent snapshot ---------------------------------------------------


@pytest.mark.parametrize("remove_old", [False, True])
def test_a_directory_swapped_during_load_is_never_mixed(
    remove_old, copy, second_bundle, tmp_path, monkeypatch
):
    old = Bundle.load(str(copy))
    real_read = BundleFiles.read
    swapped = []

    def read_then_swap(self, name):
        data = real_read(self, name)
        if name == "item_embeddings.npy" and not swapped:
            # What a redeploy does: the old directory moves aside, a new
            # bundle takes its path (and the old one may be deleted).
            aside = tmp_path / "aside"
            os.replace(copy, aside)
            shutil.copytree(second_bundle.path, copy)
            if remove_old:
                shutil.rmtree(aside)
            swapped.append(True)
        return data

    monkeypatch.setattr(BundleFiles, "read", read_then_swap)
    try:
        loaded = Bundle.load(str(copy))
    except BundleError as error:
        assert remove_old, error  # a vanished directory may be refused
        return
    monkeypatch.undo()
    assert swapped and loaded.version == old.version
    np.testing.assert_array_equal(loaded.item_embeddings, old.item_embeddings)
    assert loaded._query_tower_bytes == old._query_tower_bytes
    np.testing.assert_array_equal(
        loaded.index.search_rows(old.user_embeddings[:20], 10)[0],
        old.index.search_rows(old.user_embeddings[:20], 10)[0],
    )
    # The new bundle, loaded afterwards, is the new one throughout.
    new = Bundle.load(str(copy))
    assert new.version == second_bundle.version


def test_the_query_tower_comes_from_the_bytes_read_at_load(copy):
    bundle = Bundle.load(str(copy))
    os.remove(copy / "query_tower.keras")  # never reopened
    assert bundle.query_tower.count_params() > 0


def test_numbers_kept_as_nan_are_refused(copy):
    # A tower reads no NaN: a numeric feature must fill its empty cells.
    path = copy / "preprocessor.json"
    state = json.loads(path.read_text())
    state["features"] = [
        {"kind": "numeric", "name": "year", "missing": "indicator"}
        if spec["name"] == "year"
        else spec
        for spec in state["features"]
    ]
    state["vocabularies"].pop("year", None)
    state["stats"]["year"] = {"mean": 1990.0, "std": 10.0}
    path.write_text(json.dumps(state))
    _resign(copy)
    _load_refused(copy, r"\['year'\] as NaN")


def test_a_good_copy_loads_and_answers_as_the_original(copy, trained_bundle):
    bundle, _ = trained_bundle
    again = load_bundle(str(copy))
    users = bundle.user_ids[:50]
    for exact in (False, True):
        a, sa = bundle.recommend(users, k=10, exact=exact)
        b, sb = again.recommend(users, k=10, exact=exact)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)


FUZZ = """
import os, random, shutil, sys, tempfile
import numpy as np
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from test_hostile_bundles import _resign
from recsys import Bundle
from recsys.bundles.two_tower import BundleError
source, seeds = sys.argv[2], int(sys.argv[3])
users = Bundle.load(source).user_ids[:20]
names = sorted(
    os.path.relpath(os.path.join(d, n), source)
    for d, _, files in os.walk(source) for n in files if n != "manifest.json"
)
outcomes = {"refused": 0, "loaded": 0}
for seed in range(seeds):
    rng = random.Random(seed)
    path = os.path.join(tempfile.mkdtemp(), "b")
    shutil.copytree(source, path)
    name = rng.choice(names)
    data = bytearray(open(os.path.join(path, name), "rb").read())
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    open(os.path.join(path, name), "wb").write(data)
    if seed % 2:
        _resign(path)
    try:
        bundle = Bundle.load(path)
    except BundleError:
        outcomes["refused"] += 1
        continue
    assert seed % 2, f"{name}: changed bytes loaded without a resign"
    ids, scores = bundle.recommend(users, k=10)
    assert np.isin(ids, bundle.item_ids).all()
    assert not np.isnan(scores).any() and (np.abs(scores) < 1e30).all()
    outcomes["loaded"] += 1
print(outcomes, flush=True)
# Out without the interpreter's teardown: there a native thread pool once
# aborted ("terminate called without an active exception") after every
# flip had been handled. A crash while loading or scoring still fails the
# test: the outcome line is then missing.
os._exit(0)
"""


def test_random_byte_flips_never_crash(trained_bundle, tmp_path):
    # A subprocess, so a crash in native code fails the test, not pytest.
    # Even seeds keep the manifest (every flip is refused by its sha256);
    # odd seeds re-sign it, so the flips reach the parsers and checks.
    bundle, _ = trained_bundle
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ)
    result = subprocess.run(
        [sys.executable, str(script), __file__, bundle.path, "40"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert outcomes["refused"] + outcomes["loaded"] == 40
    assert outcomes["refused"] >= 20  # every even seed, unsigned


# -- a hand-edited manifest, preprocessor or model ---------------------------


def _edit_manifest(path, change):
    """`change(manifest)`, its config's hash updated to match (as whoever
    edits it to pass `_check_unedited` would: the checks after it are the
    ones tested)."""
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    change(manifest)
    try:
        manifest["spec_hash"] = spec_hash(manifest["config"])
    except (KeyError, TypeError):
        pass  # a config the load refuses before its hash
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "keys, value, match",
    [
        (("metrics", "test", "hr@10"), 0.99, "its metrics differ"),
        (("config", "model", "embedding_dim"), 8, "config's data, features"),
        (("config", "data", "source"), "/etc/passwd", "config's data"),
    ],
)
def test_a_manifest_edited_after_training_is_refused(
    keys, value, match, copy, no_scann_load
):
    # The manifest holds the other files' checksums, not its own: what it
    # repeats (metrics.json, the config's spec_hash) is compared instead.
    # Before, `recsys evaluate` printed an edited HR as the bundle's own.
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    _set_entry(keys, value)(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    _load_refused(copy, match)


def _set_entry(keys, value):
    def change(manifest):
        node = manifest
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    "keys, value, match",
    [
        (("kind",), ["two_tower"], "kind must be a string"),
        (("version",), {"a": 1}, "version must be a string"),
        (("config",), "x", "config must be a JSON object"),
        (("config",), None, "config must be a JSON object"),
        (("config", "model"), None, "config.model must be a JSON object"),
        (("config", "data", "user"), ["userId"], "data.user must be a string"),
        (("config", "data", "display"), 3, "data.display must be a string"),
        (
            ("config", "model", "query_features"),
            "userId",
            "query_features must be a list of strings",
        ),
        (
            ("config", "model", "history_length"),
            10**12,
            "history_length must be 0 to 1000",
        ),
        (("num_items",), float("inf"), "lacks num_items"),
    ],
    ids=lambda value: str(value)[:20],
)
def test_manifest_entries_of_the_wrong_type_are_refused(
    keys, value, match, copy
):
    # Each used to fail later: a TypeError in the service or the CLI, a
    # 3.6 TiB history buffer, an OverflowError.
    _edit_manifest(copy, _set_entry(keys, value))
    with pytest.raises(BundleError, match=match):
        load_bundle(str(copy))


def test_json_nested_thousands_deep_is_refused(copy):
    (copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="manifest.json"):
        load_bundle(str(copy))


@pytest.mark.parametrize(
    "vocabulary, match",
    [
        (lambda words: words + words[:1], "holds duplicates"),
        (lambda words: [[w] for w in words], "list of strings"),
    ],
    ids=["duplicates", "nested"],
)
def test_a_vocabulary_lookups_would_fail_on_is_refused(vocabulary, match, copy):
    path = copy / "preprocessor.json"
    state = json.loads(path.read_text())
    state["vocabularies"]["movieId"] = vocabulary(
        state["vocabularies"]["movieId"]
    )
    path.write_text(json.dumps(state))
    _resign(copy)
    with pytest.raises(BundleError, match=match):
        load_bundle(str(copy))


def test_a_query_tower_of_other_inputs_is_refused(copy):
    # The candidate tower in the query tower's place: every query would
    # fail (the service answered 500).
    shutil.copy(copy / "candidate_tower.keras", copy / "query_tower.keras")
    _resign(copy)
    bundle = load_bundle(str(copy))
    with pytest.raises(BundleError, match="query_tower.keras reads inputs"):
        bundle.query_tower  # noqa: B018 (loads it)


def test_a_keras_file_that_is_no_zip_is_named(copy):
    # Before: Keras' error named the temporary file it was copied to.
    (copy / "query_tower.keras").write_bytes(b"hello")
    _resign(copy)
    bundle = load_bundle(str(copy))
    with pytest.raises(BundleError, match="query_tower.keras: it is not a"):
        bundle.query_tower  # noqa: B018 (loads it)


def test_a_keras_zip_bomb_is_refused_before_keras_unpacks_it(copy):
    import zipfile

    path = copy / "query_tower.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", " " * (200 * 2**20))
    assert path.stat().st_size < 2**20
    _resign(copy)
    bundle = load_bundle(str(copy))
    with pytest.raises(BundleError, match="unpack to 209,715,"):
        bundle.query_tower  # noqa: B018 (loads it)


def _inflate_every_table(config):
    def inflate(node):
        if isinstance(node, dict):
            for key in ("input_dim", "output_dim"):
                if isinstance(node.get(key), int):
                    node[key] = 2_000_000_000
            for value in node.values():
                inflate(value)
        elif isinstance(node, list):
            for value in node:
                inflate(value)

    inflate(config)
    return "= 2,000,000,000"


def _inflate_one_input(config):
    # Only the tower's own list of inputs: its layers' configs unchanged.
    config["config"]["inputs"][0]["input_dim"] = 2**40
    return "input_dim = 1,099,511,627,776"


@pytest.mark.parametrize("inflate", [_inflate_every_table, _inflate_one_input])
def test_absurd_layer_sizes_are_refused_before_keras_builds_them(inflate, copy):
    import zipfile

    # Before: XLA aborted the process building a 2e9 x 2e9 embedding
    # ("overflow in static extent product"), a serving process with it;
    # and one of 2**40 rows declared in the tower's `inputs` (a list of
    # plain dicts, whose sizes were not read) aborted it on reload.
    path = copy / "query_tower.keras"
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    expected = inflate(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    _resign(copy)
    # In a process of its own: without the check, this one would abort.
    code = (
        "import sys; from recsys import load_bundle\n"
        "try:\n"
        f"    load_bundle({str(copy)!r}).query_tower\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("BundleError")
    assert expected in done.stdout


def test_items_without_the_item_column_are_refused(copy):
    import pandas as pd

    items = pd.read_parquet(copy / "items.parquet")
    items.drop(columns="movieId").to_parquet(copy / "items.parquet")
    _resign(copy)
    _load_refused(copy, "lacks the item column 'movieId'")


def test_an_npy_header_numpy_cannot_read_is_refused(copy):
    path = copy / "item_ids.npy"
    ids = np.load(path)
    header = {"descr": "<U0", "fortran_order": False, "shape": ids.shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    _resign(copy)
    _load_refused(copy, "item_ids.npy is not a valid .npy file")


def test_parquet_with_pandas_metadata_of_the_wrong_shape_is_refused(copy):
    import pyarrow.parquet as pq

    table = pq.read_table(copy / "items.parquet")
    metadata = {b"pandas": json.dumps({"index_columns": 5}).encode()}
    pq.write_table(
        table.replace_schema_metadata(metadata), copy / "items.parquet"
    )
    _resign(copy)
    _load_refused(copy, "Cannot read .*items.parquet")


def test_other_kinds_check_their_task_and_classes(trained_bundle, tmp_path):
    bundle, _ = trained_bundle
    path = tmp_path / "tabular"
    _other_kind(path, bundle, "tabular")
    _edit_manifest(path, lambda manifest: manifest.pop("task"))
    with pytest.raises(BundleError, match="must hold a task"):
        load_bundle(str(path))
    # Before: loaded, and scored as `score = p([2])`.
    for classes in ([{"a": 1}, [2]], ["no", "yes", "maybe"], ["a", "a"]):
        _edit_manifest(path, _set_entry(("task",), "binary"))
        _edit_manifest(path, _set_entry(("classes",), classes))
        with pytest.raises(BundleError, match="classes of a binary bundle"):
            load_bundle(str(path))


# -- tabular and text bundles: the same closed list -------------------------


def _other_kind(path, trained, kind, users_ids=(1, 2, 3)):
    """A tabular or text bundle whose model is junk (refused last)."""
    import pandas as pd

    os.makedirs(path)
    shutil.copy(os.path.join(trained.path, "preprocessor.json"), path)
    (path / "metrics.json").write_text("{}")
    (path / "model.keras").write_bytes(b"PK not a zip")
    config = {
        "tabular": {
            "data": {"user": "userId", "item": "movieId", "time": "timestamp"},
            "model": {"kind": "tabular", "task": "binary"},
        },
        "text": {
            "data": {"text": "text", "label": "label"},
            "model": {"kind": "text"},
        },
    }[kind]
    manifest = {
        "format_version": 2,
        "kind": kind,
        "config": config,
        "task": "binary",
        "classes": [],
    }
    if kind == "tabular":
        pd.DataFrame({"movieId": [10, 20]}).to_parquet(path / "items.parquet")
        pd.DataFrame({"userId": list(users_ids)}).to_parquet(
            path / "users.parquet"
        )
    (path / "manifest.json").write_text(json.dumps(manifest))
    _resign(path)


@pytest.mark.parametrize("kind", ["tabular", "text"])
def test_other_kinds_check_their_files_before_their_model(
    kind, trained_bundle, tmp_path
):
    bundle, _ = trained_bundle
    path = tmp_path / kind
    _other_kind(path, bundle, kind)
    with pytest.raises(BundleError, match="Cannot load the model"):
        load_bundle(str(path))
    (path / "extra.pkl").write_bytes(b"x")
    with pytest.raises(BundleError, match="extra.pkl is not part of"):
        load_bundle(str(path))
    os.remove(path / "extra.pkl")
    os.remove(path / "preprocessor.json")
    os.mkfifo(path / "preprocessor.json")
    with pytest.raises(BundleError, match="preprocessor.json is a FIFO"):
        load_bundle(str(path))


def test_tabular_duplicate_user_ids_are_refused(trained_bundle, tmp_path):
    bundle, _ = trained_bundle
    path = tmp_path / "tabular"
    _other_kind(path, bundle, "tabular", users_ids=(1, 2, 1))
    with pytest.raises(BundleError, match="users.parquet holds duplicate"):
        load_bundle(str(path))


def test_the_service_and_the_reranker_refuse_hostile_bundles(
    copy, trained_bundle, tmp_path
):
    from recsys.serving.reranker import Reranker
    from recsys.serving.service import RetrievalService

    marker = tmp_path / "marker"
    with open(copy / SCANN / "scann_docids.pkl", "wb") as f:
        pickle.dump(_Payload(marker), f)
    _resign(copy)
    with pytest.raises(BundleError, match="scann_docids.pkl"):
        RetrievalService.load(str(copy))
    ranker = tmp_path / "ranker"
    _other_kind(ranker, trained_bundle[0], "tabular")
    os.symlink("/dev/zero", ranker / "user_history.npy")
    with pytest.raises(BundleError, match="user_history.npy is a symlink"):
        Reranker.load(str(ranker))
    assert not marker.exists()


# -- outside audit: sizes, norms and configs a loaded bundle trusted ---------


@pytest.mark.parametrize(
    "version",
    [
        "\x1b[31mRED\x1b[0m\n" + "A" * 5_000_000,
        "v1\nerror: FAKE LOG LINE injected \x1b[31mRED\x1b[0m",
        "v" * 65,
        "",
        "v 1",
        "v1\u00e9",
    ],
    ids=["5MB-escapes", "newline", "65-chars", "empty", "space", "non-ascii"],
)
def test_a_long_or_unprintable_version_is_refused(version, copy):
    # The service puts the version in every answer and log line: 5 MB of it
    # made a 5 KB batch request answer 1.28 GB; a newline forged log lines.
    _edit_manifest(copy, _set_entry(("version",), version))
    with pytest.raises(BundleError, match="version must be 1 to 64") as info:
        load_bundle(str(copy))
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message
    assert len(message) < 600


@pytest.mark.parametrize("version", ["v2.1", "prod-2026-12-01+fix", "v" * 64])
def test_a_short_version_renamed_by_hand_loads(version, copy):
    _edit_manifest(copy, _set_entry(("version",), version))
    assert load_bundle(str(copy)).version == version


def _items_with_titles(path, title, nested=False, **write_options):
    """items.parquet with every display title replaced by `title` (or by
    `[title, title]`, a list column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path / "items.parquet")
    at = table.schema.get_field_index("title")
    if nested:
        titles = pa.array([[title] * 2] * table.num_rows, pa.list_(pa.string()))
    else:
        titles = pa.array([title] * table.num_rows, pa.string())
    table = table.set_column(at, "title", titles)
    pq.write_table(table, path / "items.parquet", **write_options)
    _resign(path)


@pytest.mark.parametrize("nested", [False, True], ids=["strings", "lists"])
def test_a_parquet_dictionary_bomb_is_refused_before_it_is_decoded(
    nested, copy
):
    # The audit's: 9,066 copies of one 50 KB title, stored once (dictionary)
    # and zstd-compressed: a 27.6 KB file that read into 1.25 GB. Its
    # footer says 0.14 MB (the pages hold the title once).
    _items_with_titles(
        copy, "A" * 50_000, nested, compression="zstd", compression_level=19
    )
    assert (copy / "items.parquet").stat().st_size < 200_000
    message = _load_refused(copy, "items.parquet: its .* bytes decode to")
    if not nested:
        assert "453,446,190" in message  # 9,066 x (50,000 + offsets)


def test_a_parquet_compression_bomb_is_refused_from_its_footer(
    copy, monkeypatch
):
    import recsys.storage.files as files

    # Pages that decompress to 40 times the file (no dictionary): the
    # footer says so, and nothing is read.
    monkeypatch.setattr(files, "PARQUET_SLACK", 0)
    _items_with_titles(
        copy, "A" * 4_000, compression="zstd", use_dictionary=False
    )
    assert (copy / "items.parquet").stat().st_size < 10**6
    _load_refused(copy, "items.parquet: its .* bytes decompress to")


def test_parquet_rows_of_one_repeated_value_are_counted(
    trained_bundle, tmp_path, monkeypatch
):
    import pandas as pd

    import recsys.storage.files as files

    # Run-length encoded: 5M rows of one id in a few KB, 40 MB read.
    monkeypatch.setattr(files, "PARQUET_SLACK", 2**20)
    path = tmp_path / "tabular"
    _other_kind(path, trained_bundle[0], "tabular")
    users = pd.DataFrame({"userId": np.ones(5_000_000, np.int64)})
    users.to_parquet(path / "users.parquet")
    _resign(path)
    assert (path / "users.parquet").stat().st_size < 100_000
    with pytest.raises(BundleError, match="users.parquet: its .* hold rows"):
        load_bundle(str(path))


def test_parquet_tables_read_as_pyarrow_and_pandas_read_them(copy):
    import pandas as pd
    import pyarrow.parquet as pq

    # Strings are read as dictionaries to be counted, then decoded: the
    # frame is the one pandas reads (nulls, categories, bytes, many row
    # groups).
    n = 50_000
    items = pd.DataFrame(
        {
            "movieId": np.arange(n),
            "title": [f"Title {i}" for i in range(n)],
            "genres": np.array(["Comedy", None, "Drama|War"], object)[
                np.arange(n) % 3
            ],
            "kind": pd.Categorical(np.array(["a", "bb"])[np.arange(n) % 2]),
            "raw": [b"\x00\x01"] * n,
            "tags": [["a", "bb"], None, []] * (n // 3) + [["c"]] * (n % 3),
            "year": np.linspace(1900, 2020, n),
        }
    )
    items.to_parquet(copy / "items.parquet", row_group_size=7_000)
    _resign(copy)
    files, _ = BundleFiles.open(str(copy), "manifest.json")
    with files:
        files.check_files(
            json.loads((copy / "manifest.json").read_text())["files"],
            {"items.parquet", *file_digests(copy)},
            (),
        )
        read = files.parquet("items.parquet")
    expected = pq.read_table(copy / "items.parquet").to_pandas()
    pd.testing.assert_frame_equal(read, expected, check_exact=True)


@pytest.mark.parametrize("name", ["user_embeddings.npy", "item_embeddings.npy"])
def test_embeddings_whose_scores_overflow_float32_are_refused(
    name, copy, no_scann_load
):
    # Finite, so the NaN check passed, and every score was inf or NaN: the
    # service answered "score": null in catalog order. Items alone bound
    # the scores of a query tower's vectors too.
    array = np.load(copy / name)
    _save(copy, name, (np.sign(array) * 3e38).astype(np.float32))
    _load_refused(copy, f"{name} holds vectors of norm up to .* overflow")


def test_large_but_sane_embeddings_load(copy):
    # Norms a thousand times a trained model's: far from the limit.
    name = "user_embeddings.npy"
    _save(copy, name, np.load(copy / name) * 1000)
    bundle = load_bundle(str(copy))
    _, scores = bundle.recommend([1], k=3, exact=True)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize(
    "keys",
    [
        ("data", "user"),
        ("data", "item"),
        ("model", "query_features"),
        ("model", "candidate_features"),
        ("model", "history_length"),
    ],
    ids=".".join,
)
def test_config_keys_the_loaders_read_must_be_there(keys, copy):
    # Each loaded, then failed with a bare KeyError: in the query tower,
    # in RetrievalService ("user").
    def drop(manifest):
        del manifest["config"][keys[0]][keys[1]]

    _edit_manifest(copy, drop)
    message = _load_refused(copy, f"config.{'.'.join(keys)} is missing")
    assert message.endswith("Fix: retrain the bundle.")


@pytest.mark.parametrize(
    "keys, value, match",
    [
        # `recsys index --items` ended in an AttributeError traceback.
        (("config", "index"), [1, 2], r"\[index\] must be a table"),
        (("config", "model", "embedding_dim"), "64", "embedding_dim"),
        (("config", "model", "kind"), "tabular", "config.model.kind is"),
        (("config", "train", "optimizer"), "lion", "train.optimizer"),
    ],
    ids=["index-list", "dim-string", "other-kind", "optimizer"],
)
def test_a_config_training_would_refuse_is_refused(keys, value, match, copy):
    _edit_manifest(copy, _set_entry(keys, value))
    message = _load_refused(copy, match)
    assert message.count("Fix:") == 1


def test_an_older_config_loads_with_the_defaults_of_newer_keys(copy):
    from recsys.config import KIND_DEFAULTS

    # Keys added since a bundle was written take their defaults; keys since
    # removed are dropped (nothing reads them).
    def older(manifest):
        config = manifest["config"]
        del config["index"], config["model"]["history_encoder"]
        config["data"]["removed_since"] = 1
        config["old_section"] = {"a": 1}

    _edit_manifest(copy, older)
    bundle = load_bundle(str(copy))
    assert bundle.config["index"] == KIND_DEFAULTS["two_tower"]["index"]
    assert "history_encoder" in bundle.config["model"]
    assert "removed_since" not in bundle.config["data"]
    assert "old_section" not in bundle.config


@pytest.mark.parametrize(
    "key, value",
    [("num_items", "9066"), ("num_users", 670.5), ("num_users", True)],
)
def test_counts_must_be_integers(key, value, copy):
    _edit_manifest(copy, _set_entry((key,), value))
    _load_refused(copy, "lacks num_items / num_users")


@pytest.mark.parametrize("empty", ["users", "items"])
def test_an_empty_ranker_table_is_refused(empty, trained_bundle, tmp_path):
    import pandas as pd

    # `recsys serve --ranker` crashed on it (IndexError in `_rows`).
    path = tmp_path / "tabular"
    _other_kind(path, trained_bundle[0], "tabular")
    column = {"users": "userId", "items": "movieId"}[empty]
    pd.DataFrame({column: np.zeros(0, np.int64)}).to_parquet(
        path / f"{empty}.parquet"
    )
    _resign(path)
    with pytest.raises(BundleError, match=f"{empty}.parquet holds no rows"):
        load_bundle(str(path))


@pytest.fixture(scope="module")
def binary_ranker(tmp_path_factory):
    """A binary (liked) `TabularBundle` trained in seconds: MovieLens users
    1-40, one epoch, no baselines."""
    from recsys import train
    from recsys.config import load_config
    from recsys.data.movielens import load_movielens

    frame = load_movielens()
    frame = frame[frame["userId"] <= 40].reset_index(drop=True)
    config = load_config(
        "configs/movielens_liked.toml",
        ["train.epochs=1", "train.refit=false", "evaluate.baselines=[]"],
    )
    path = tmp_path_factory.mktemp("rankers") / "liked"
    bundle, _ = train(config, str(path), frame=frame, progress=False)
    return bundle


def test_a_config_task_other_than_the_models_is_refused(
    binary_ranker, tmp_path
):
    # A binary model (a sigmoid) under a config saying "regression" was
    # served without a word; the model's own task is the manifest's.
    assert binary_ranker.task == "binary"
    path = tmp_path / "ranker"
    shutil.copytree(binary_ranker.path, path)
    _edit_manifest(path, _set_entry(("config", "model", "task"), "regression"))
    with pytest.raises(BundleError, match="config.model.task is 'regression'"):
        load_bundle(str(path))
    lazy = TabularBundle.load(str(path), load_model=False)
    with pytest.raises(BundleError, match="config.model.task is 'regression'"):
        lazy.model  # noqa: B018 (builds it)


def test_a_manifest_number_past_pythons_digit_limit_is_refused(copy):
    text = (copy / "manifest.json").read_text()
    (copy / "manifest.json").write_text(
        text.replace(
            '"num_items": ', '"num_items": ' + "9" * 5000 + ', "x": ', 1
        )
    )
    _load_refused(copy, "Cannot read .*manifest.json")


# -- the command line ---------------------------------------------------------


def _recommend(path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "recsys.cli", "recommend", str(path)]
    return subprocess.run(
        [*command, "--user", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _error_lines(result):
    """stderr without the native libraries' log lines."""
    return [
        line
        for line in result.stderr.strip().splitlines()
        if not line.startswith(("I0000", "W0000", "WARNING: All log"))
    ]


def test_recommend_on_a_hostile_bundle_exits_1_with_one_line(copy, tmp_path):
    marker = tmp_path / "marker"
    with open(copy / SCANN / "scann_docids.pkl", "wb") as f:
        pickle.dump(_Payload(marker), f)
    _resign(copy)
    result = _recommend(copy)
    assert result.returncode == 1, result.stderr
    lines = _error_lines(result)
    assert len(lines) == 1 and "scann_docids.pkl" in lines[0], lines
    assert not marker.exists()
