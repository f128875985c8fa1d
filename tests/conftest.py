"""Shared fixtures. The Keras backend defaults to JAX, as in the CLI."""

import logging
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Most of a small test's time is XLA compiling a fresh Keras model's steps,
# and the suite trains many identical small models: a persistent compilation
# cache, shared with the servers and CLIs the tests start, compiles each
# program once per machine. It lives in pytest's own cache folder.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        ".pytest_cache",
        "jax-compilation",
    ),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The same programs with cheaper LLVM passes: most tests compile more than
# they train. Not level 0, which halved the training speed of the longer
# tests (RESULTS.md, "Test suite time, cold (session 34)").
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=1 "
    "--xla_llvm_disable_expensive_passes=true",
)

import pytest  # noqa: E402

DEFAULT_CONFIG = "configs/movielens_two_tower.toml"


@pytest.fixture(autouse=True)
def without_cli_log_handler():
    """Each test starts and ends without the CLI's stderr handler: a test
    that ran `cli.main` must not print another test's log records (which
    would reach that test's captured stderr)."""
    from recsys import logs

    logger = logging.getLogger("recsys")
    level = logger.level

    def remove():
        for handler in list(logger.handlers):
            if getattr(handler, logs._HANDLER_MARK, False):
                logger.removeHandler(handler)

    remove()
    yield
    remove()
    logger.setLevel(level)


def _built_once(tmp_path_factory, name, build):
    """The folder `build(path)` writes, built once per test run: under
    pytest-xdist the first worker to ask builds it while the others wait
    on its lock, then all read it (a MovieLens training a worker less).

    Returns:
        The folder's `pathlib.Path`.
    """
    import fcntl

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        path = tmp_path_factory.mktemp(name) / name
        build(path)
        return path
    # The workers' base folders share this run's parent folder.
    shared = tmp_path_factory.getbasetemp().parent
    path, done = shared / name, shared / f"{name}.built"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def bundle_root(tmp_path_factory):
    """The folder that holds every bundle the tests write, the shared ones
    (`_built_once`) too: a service's `bundle_root` for reloads."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory):
    """The default config trained on MovieLens once per test run (shared
    by pytest-xdist's workers), with its baselines but the recency-weighted
    EASE: its validation grid took a third of the fixture's time, and its
    own tests train it (tests/baselines, notebook 01 the whole default).

    Returns:
        `(bundle, metrics)`: the loaded bundle and its metrics.json.
    """
    import json

    from recsys import Bundle
    from recsys import train
    from recsys.config import load_config

    config = load_config(
        DEFAULT_CONFIG,
        ["evaluate.baselines=['popularity', 'ease', 'item_knn']"],
    )
    path = _built_once(
        tmp_path_factory,
        "movielens",
        lambda path: train(config, str(path), progress=False),
    )
    metrics = json.loads((path / "metrics.json").read_text())
    return Bundle.load(str(path)), metrics


@pytest.fixture
def copy(trained_bundle, tmp_path):
    """A copy of `trained_bundle`'s directory, to edit by hand."""
    import shutil

    bundle, _ = trained_bundle
    path = tmp_path / "bundle"
    shutil.copytree(bundle.path, path)
    return path


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory):
    """Another, different bundle (seed 1, one epoch) for reload tests."""
    from recsys import Bundle
    from recsys import train
    from recsys.config import load_config

    config = load_config(
        DEFAULT_CONFIG,
        ["train.seed=1", "train.epochs=1", "evaluate.baselines=['popularity']"],
    )
    path = _built_once(
        tmp_path_factory,
        "second",
        lambda path: train(config, str(path), progress=False),
    )
    return Bundle.load(str(path))
