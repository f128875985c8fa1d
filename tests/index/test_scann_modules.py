import logging
import subprocess
import sys

import numpy as np
import pytest

from recsys.index import BruteForceIndex
from recsys.index import ScannIndex
from recsys.index import build_index
from recsys.index import load_index
from recsys.index import scann_modules
from recsys.index.scann_modules import ScannUnavailable
from recsys.index.scann_modules import scann_ops

NOTICE = "Using exact (brute-force) search instead of ScaNN"


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8)).astype("float32")


@pytest.fixture
def no_scann(monkeypatch):
    """ScaNN fails to import, as on a platform without its wheel."""
    for name in [m for m in sys.modules if m.startswith("scann.")]:
        monkeypatch.delitem(sys.modules, name)
    # `None` in sys.modules makes `import scann` raise ImportError.
    monkeypatch.setitem(sys.modules, "scann", None)
    monkeypatch.setattr(scann_modules, "_noticed", False)


def test_scann_loads_without_running_its_package_init():
    code = (
        "import sys\n"
        "from recsys.index.scann_modules import scann_ops\n"
        "ops = scann_ops()\n"
        "import scann, scann.proto.scann_pb2\n"
        "print(hasattr(ops, 'builder'), 'tensorflow' in sys.modules,\n"
        "      'ScannBuilder' in vars(scann), scann.proto.scann_pb2.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    # The pybind searcher is there, and `import scann` gives the package
    # with its submodules, its `__init__.py` (and TensorFlow) not run yet.
    assert done.stdout.split() == [
        "True",
        "False",
        "False",
        "scann.proto.scann_pb2",
    ]


def test_the_scann_package_works_as_usual_after_recsys_loaded_it():
    ops = scann_ops()
    import scann  # its names run the real __init__ (TF ops included)

    assert scann.scann_ops_pybind is ops
    assert scann.ScannBuilder is not None
    scann_pb2 = scann_modules.scann_module("proto.scann_pb2")
    assert scann.proto.scann_pb2 is scann_pb2
    # As after a plain `import scann`: ScaNN's TF ops where TF is installed.
    assert scann.scann_ops.__name__ in (
        "scann.scann_ops.py.scann_ops",
        "scann.scann_ops",
    )


def test_scann_ops_raises_scann_unavailable(no_scann):
    with pytest.raises(ScannUnavailable, match="ScaNN is not available"):
        scann_ops()
    assert not scann_modules.scann_available()


def test_build_index_falls_back_to_exact_with_one_notice(no_scann, caplog):
    items = _rows(5_000)
    with caplog.at_level(logging.WARNING):
        auto = build_index(items)
        asked = build_index(items, kind="scann", num_leaves=10)
    assert isinstance(auto, BruteForceIndex)
    assert isinstance(asked, BruteForceIndex)
    notices = [r.getMessage() for r in caplog.records if NOTICE in r.message]
    assert len(notices) == 1 and "\n" not in notices[0]


def test_saved_scann_index_loads_as_exact_without_scann(tmp_path, monkeypatch):
    items, queries = _rows(300), _rows(5, seed=1)
    index = build_index(items, kind="scann")
    assert isinstance(index, ScannIndex)
    index.save(tmp_path)
    exact = BruteForceIndex(items).search(queries, 10)
    for name in [m for m in sys.modules if m.startswith("scann.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "scann", None)
    loaded = load_index(tmp_path)
    assert isinstance(loaded, BruteForceIndex)
    for got, want in zip(loaded.search(queries, 10), exact, strict=True):
        np.testing.assert_array_equal(got, want)
