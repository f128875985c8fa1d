"""The install claims only `recsys`, and loading a bundle needs neither
TensorFlow nor Keras, whatever the working directory holds."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Repository folder -> the import name it is installed under.
INSTALLED_AS = {
    "recsys": "recsys",
    "features": "recsys.features",
    "serving": "recsys.serving",
    "configs": "recsys.configs",
}
SHADOW = "raise ImportError(\"a user's {} was imported instead of recsys's\")\n"


def _run(code_or_args, cwd):
    """Runs Python in `cwd`, which is first on `sys.path` (as a user's)."""
    args = (
        ["-c", code_or_args] if isinstance(code_or_args, str) else code_or_args
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    """A user's project: its own `features.py` and `serving/` package."""
    path = tmp_path_factory.mktemp("user_project")
    (path / "features.py").write_text(SHADOW.format("features.py"))
    (path / "serving").mkdir()
    (path / "serving" / "__init__.py").write_text(SHADOW.format("serving/"))
    return path


@pytest.fixture(scope="module")
def bundle_path(user_dir):
    """A ScaNN bundle trained from the user's directory on synthetic data,
    with the shipped config named by its bare file name."""
    synth = "synth data --users 300 --items 200 --interactions 20000 -q"
    train = (
        "train synthetic_two_tower.toml --set data.path=data "
        "--set index.kind=scann --output bundle --quiet"
    )
    for command in (synth, train):
        _run(["-m", "recsys.cli", *command.split()], user_dir)
    return user_dir / "bundle"


def test_loading_and_recommending_import_no_shadow_nor_tensorflow(
    user_dir, bundle_path
):
    code = f"""
import json, sys
import recsys, recsys.features, recsys.serving.app
bundle = recsys.load_bundle({str(bundle_path)!r})
ids, _ = bundle.recommend([1], k=10)
print(json.dumps({{
    "shape": list(ids.shape),
    "index": type(bundle.index).__name__,
    "imported": sorted(
        name for name in ("features", "serving", "tensorflow", "keras")
        if name in sys.modules
    ),
}}))
"""
    result = json.loads(_run(code, user_dir).splitlines()[-1])
    assert result == {"shape": [1, 10], "index": "ScannIndex", "imported": []}


def test_the_backend_defaults_to_jax_in_the_python_api(user_dir):
    code = "import recsys, keras; print(keras.backend.backend())"
    assert _run(code, user_dir).strip() == "jax"


def _packages_on_disk():
    found = set()
    for folder, name in INSTALLED_AS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *parts)))
    return found


def test_setuptools_packages_are_the_packages_on_disk():
    with open(REPO / "pyproject.toml", "rb") as f:
        setuptools = tomllib.load(f)["tool"]["setuptools"]
    assert set(setuptools["packages"]) == _packages_on_disk()
    assert setuptools["package-dir"] == {
        name: folder for folder, name in INSTALLED_AS.items()
    }
