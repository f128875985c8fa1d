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


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory):
    """The default config trained on MovieLens once per test session (per
    pytest-xdist worker), with its baselines but the recency-weighted EASE:
    its validation grid took a third of the fixture's time, and its own
    tests train it (tests/baselines, notebook 01 the whole default)."""
    from recsys import train
    from recsys.config import load_config

    config = load_config(
        DEFAULT_CONFIG,
        ["evaluate.baselines=['popularity', 'ease', 'item_knn']"],
    )
    path = tmp_path_factory.mktemp("bundles") / "movielens"
    bundle, metrics = train(config, str(path), progress=False)
    return bundle, metrics


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
    from recsys import train
    from recsys.config import load_config

    config = load_config(
        DEFAULT_CONFIG,
        ["train.seed=1", "train.epochs=1", "evaluate.baselines=['popularity']"],
    )
    path = tmp_path_factory.mktemp("bundles") / "second"
    bundle, _ = train(config, str(path), progress=False)
    return bundle
