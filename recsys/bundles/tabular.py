"""`TabularBundle`: a trained tabular model as one self-describing directory.

Layout:
    manifest.json        kind "tabular", versions, config, metrics, task,
                         classes, the item-side columns
    metrics.json         the run's metrics (also in the manifest)
    preprocessor.json    the fitted `features.Preprocessor`
    model.keras          the `TabularModel` (loaded with `safe_mode=True`)
    items.parquet        one row per item: its item-side feature columns
    users.parquet        one row per user: the other feature columns, from
                         the user's latest training row
    user_history.npy     the users' latest positive items (model item ids),
                         aligned with users.parquet (history models only)

The item and user tables let the bundle score (user, item) pairs that have
no row of their own: the candidates of a two-stage recommender.
"""

import os
import threading

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys.bundles.two_tower import COMMON_FILES
from recsys.bundles.two_tower import BundleError
from recsys.bundles.two_tower import ManifestProperties
from recsys.bundles.two_tower import open_bundle
from recsys.bundles.two_tower import read_preprocessor
from recsys.bundles.two_tower import write_atomically
from recsys.bundles.two_tower import write_manifest
from recsys.data.sources import names_as_text
from recsys.errors import positive_int
from recsys.features import canonical_strings
from recsys.names import HISTORY
from recsys.scoring import UnseenValues
from recsys.storage.files import load_keras_bytes

KIND = "tabular"
REQUIRED_FILES = (
    *COMMON_FILES,
    "model.keras",
    "items.parquet",
    "users.parquet",
)
ALLOWED_FILES = (*REQUIRED_FILES, "user_history.npy")


def write_tabular_bundle(
    path,
    *,
    config,
    metrics,
    preprocessor,
    model,
    items,
    users,
    classes,
    user_history=None,
):
    """Writes a tabular bundle directory atomically.

    Args:
        path: str. Destination directory (an existing bundle is replaced).
        config: dict. The run config.
        metrics: dict. Written to `metrics.json` and the manifest.
        preprocessor: fitted `features.Preprocessor`.
        model: the trained `TabularModel`.
        items: DataFrame. Item id + item-side feature columns.
        users: DataFrame. User id + the other feature columns.
        classes: list. Class labels of a multiclass task, or the two values
            of a binary text label (else `[]`).
        user_history: optional int32 array `(len(users), length)`.

    Returns:
        The absolute path of the bundle.
    """

    def fill(tmp):
        preprocessor.save(os.path.join(tmp, "preprocessor.json"))
        model.save(os.path.join(tmp, "model.keras"))
        for name, table in (("items", items), ("users", users)):
            _readable(table).to_parquet(
                os.path.join(tmp, f"{name}.parquet"), index=False
            )
        if user_history is not None:
            np.save(
                os.path.join(tmp, "user_history.npy"),
                np.asarray(user_history, np.int32),
                allow_pickle=False,
            )
        write_manifest(
            tmp,
            kind=KIND,
            config=config,
            metrics=metrics,
            task=config["model"]["task"],
            classes=list(classes),
            item_columns=list(items.columns),
            user_columns=list(users.columns),
        )

    return write_atomically(path, fill, KIND)


def _readable(table):
    """`table` with its Arrow list (and other nested) columns as objects.

    pandas writes an Arrow list column's dtype into the Parquet file as a
    name it cannot read back (`list<item: string>[pyarrow]`); as objects,
    it is a plain Parquet list, read as any list cell.
    """
    nested = {
        column: object
        for column, dtype in table.dtypes.items()
        if isinstance(dtype, pd.ArrowDtype)
        and pa.types.is_nested(dtype.pyarrow_dtype)
    }
    return table.astype(nested) if nested else table


TASKS = ("regression", "binary", "multiclass")


def _check_task(path, manifest):
    """The manifest's task and classes, as training writes them."""
    task, classes = manifest.get("task"), manifest.get("classes")
    if task not in TASKS or not isinstance(classes, list):
        raise BundleError(
            f"{path}/manifest.json must hold a task (one of {TASKS}) and a "
            f"list of classes. Received: task={str(task)[:40]!r}, classes "
            f"of type {type(classes).__name__}. Fix: retrain the bundle."
        )
    # Label values (text, numbers), distinct: none for a regression, none
    # or the two text values for a binary task (a forged list of dicts was
    # printed as the score's class).
    counts = {"regression": (0,), "binary": (0, 2)}.get(task)
    expected = "distinct label values"
    if counts is not None:
        expected = f"{' or '.join(map(str, counts))} {expected}"
    if (
        not all(isinstance(value, str | int | float) for value in classes)
        or len(set(classes)) != len(classes)
        or (counts is not None and len(classes) not in counts)
    ):
        raise BundleError(
            f"{path}/manifest.json: the classes of a {task} bundle must be "
            f"{expected}. Received: {str(classes)[:80]}. Fix: retrain the "
            "bundle."
        )


def _checked_model(model, where, manifest, inputs):
    """`model`, once it is a tabular model of the bundle's task reading the
    bundle's `inputs` (not, say, another bundle's tower), and the config's
    task is that task too."""
    task = manifest["task"]
    names = getattr(model, "feature_names", None)
    if getattr(model, "task", None) != task or sorted(names or []) != sorted(
        inputs
    ):
        raise BundleError(
            f"{where} is not this bundle's {task} model of inputs {inputs} "
            f"(it reads {names}). Fix: retrain the bundle."
        )
    # Training writes the config's task as the manifest's and the model's
    # (whose output follows it: a sigmoid for "binary"): a config saying
    # "regression" over a binary model was served without a word.
    written = manifest["config"]["model"].get("task")
    if written != task:
        raise BundleError(
            f"{os.path.dirname(where)}/manifest.json: config.model.task is "
            f"{str(written)[:40]!r}, and the bundle's model is a {task!r} "
            "model. Fix: retrain the bundle."
        )
    return model


def _model_inputs(preprocessor, user_history):
    """The inputs a bundle's model reads: its features, and the users'
    histories where it has them."""
    history = [HISTORY] if user_history is not None else []
    return [f.name for f in preprocessor.features] + history


def _check_tables(path, manifest, items, users, user_history):
    """Checks the id columns and the history before anything uses them."""
    try:
        data = manifest["config"]["data"]
        columns = {"items": data["item"], "users": data["user"]}
    except (KeyError, TypeError):
        raise BundleError(
            f"{path}/manifest.json lacks config.data.user / .item."
        ) from None
    if not columns["users"]:  # trained on a table without ids
        return
    for name, table in (("items", items), ("users", users)):
        column = columns[name]
        if not len(table):  # training writes every user and item it saw
            raise BundleError(
                f"{path}/{name}.parquet holds no rows: a ranker looks each "
                f"{name[:-1]} up in it. Fix: retrain the bundle."
            )
        if not column:
            raise BundleError(
                f"{path}/manifest.json names no {name[:-1]} column "
                f"(config.data.{name[:-1]}) beside the {columns['users']!r} "
                "users. Fix: retrain the bundle."
            )
        if column not in table.columns:
            raise BundleError(
                f"{path}/{name}.parquet lacks its id column '{column}'."
            )
        if not pd.Index(canonical_strings(table[column])).is_unique:
            raise BundleError(
                f"{path}/{name}.parquet holds duplicate ids in column "
                f"'{column}': each id must appear once. Fix: retrain."
            )
    if user_history is not None and (
        user_history.dtype != np.int32
        or user_history.ndim != 2
        or len(user_history) != len(users)
        or (user_history.size and user_history.min() < 0)
    ):
        raise BundleError(
            f"{path}/user_history.npy must be non-negative int32 of shape "
            f"({len(users)}, length). Received: {user_history.dtype} "
            f"{user_history.shape}"
        )


class TabularBundle(ManifestProperties):
    """A loaded tabular model: scores rows, or (user, item) pairs.

    Use `TabularBundle.load(path)` (or `recsys.load_bundle(path)`).

    Example:

    ```python
    ranker = TabularBundle.load("artifacts/movielens_rating")
    ranker.predict(frame)                 # one rating per row
    ranker.score_pairs([1, 1], [31, 1029])
    ```
    """

    def __init__(
        self,
        path,
        manifest,
        preprocessor,
        model,
        items,
        users,
        user_history=None,
        model_bytes=None,
    ):
        self.path = path
        self.manifest = manifest
        self.preprocessor = preprocessor
        # With `model=None`, the checked bytes read at load: the model is
        # built from these on first use (a server's supervisor shares the
        # ranker's tables with its workers without importing Keras).
        self._model = model
        self._model_bytes = model_bytes
        self._model_lock = threading.Lock()
        # Keras' `predict` keeps per-call state on the model: two threads in
        # it at once broke it for good (`'NoneType' object is not callable`).
        self._predict_lock = threading.Lock()
        self.items = items
        self.users = users
        self.user_history = user_history
        data = manifest["config"]["data"]
        self.user_column, self.item_column = data["user"], data["item"]
        # A table without ids (data.user = "") has no pairs to score.
        self._user_rows = pd.Index(
            canonical_strings(users[self.user_column])
            if self.user_column
            else []
        )
        self._item_rows = pd.Index(
            canonical_strings(items[self.item_column])
            if self.item_column
            else []
        )

    @property
    def model(self):
        """The Keras model (built on first use after `load_model=False`)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    name = os.path.join(self.path, "model.keras")
                    self._model = _checked_model(
                        load_keras_bytes(self._model_bytes, name),
                        name,
                        self.manifest,
                        _model_inputs(self.preprocessor, self.user_history),
                    )
        return self._model

    @classmethod
    def load(cls, path, *, load_model=True):
        """Loads a bundle directory written by a tabular `recsys train`.

        Args:
            path: str. The bundle directory.
            load_model: bool. Build the Keras model now; `False` keeps its
                checked bytes and builds it on first use of `model` (no
                Keras import until then). Defaults to `True`.

        Raises:
            BundleError: if the directory is missing, incomplete or not a
                tabular bundle.
        """
        files, manifest = open_bundle(path, KIND, ALLOWED_FILES, REQUIRED_FILES)
        _check_task(path, manifest)
        with files:
            files.read("metrics.json")  # checked, though read on demand
            preprocessor = read_preprocessor(files)
            model_bytes = files.read("model.keras")
            items = files.parquet("items.parquet")
            users = files.parquet("users.parquet")
            user_history = (
                files.npy("user_history.npy")
                if "user_history.npy" in files.files
                else None
            )
        _check_tables(path, manifest, items, users, user_history)
        model = None
        if load_model:
            model = _checked_model(
                load_keras_bytes(
                    model_bytes, os.path.join(path, "model.keras")
                ),
                os.path.join(path, "model.keras"),
                manifest,
                _model_inputs(preprocessor, user_history),
            )
        return cls(
            path,
            manifest,
            preprocessor,
            model,
            items,
            users,
            user_history,
            model_bytes=None if load_model else model_bytes,
        )

    @property
    def task(self):
        return self.manifest["task"]

    @property
    def classes(self):
        return self.manifest["classes"]

    @property
    def feature_names(self):
        return [f.name for f in self.preprocessor.features]

    @property
    def input_columns(self):
        """The columns `predict` reads: the features, and the user id where
        the model reads its users' histories."""
        history = [self.user_column] if self.user_history is not None else []
        return list(dict.fromkeys(self.feature_names + history))

    def predict(self, frame, batch_size=8192, *, unseen=None):
        """Scores every row of a table.

        A category value the model never learned (absent from training, or
        too rare there: `RENT` where training had `rent`) is scored as the
        unknown value; one warning counts them, per column with an example,
        as `recsys score` does.

        Args:
            frame: pandas DataFrame (or pyarrow Table) holding every feature
                column; other columns are ignored.
            batch_size: int. Rows per model call. Defaults to `8192`.
            unseen: `recsys.scoring.UnseenValues` or `None`. Counts the
                values never learned instead of warning of them now (the
                caller warns once, as `score_file` does for a whole file).
                Defaults to `None`.

        Returns:
            float32 array: `(n,)` predicted values (regression) or
            positive-class probabilities (binary); `(n, num_classes)` class
            probabilities (multiclass, in the order of `classes`).
        """
        batch_size = positive_int(batch_size, "batch_size")
        if isinstance(frame, pd.DataFrame):
            # Named as training named them: "0", "1", ... for numbered ones.
            frame = names_as_text(
                frame, [f.name for f in self.preprocessor.features]
            )
        arrays = self.preprocessor.transform(frame)
        rows = len(next(iter(arrays.values())))
        counter = UnseenValues(self.preprocessor) if unseen is None else unseen
        counter.add(frame, arrays)
        if unseen is None:
            counter.warn(rows)
        return self._scores(frame, arrays, batch_size)

    def _scores(self, frame, arrays, batch_size=8192):
        """`predict`'s scores of `frame`, whose features `arrays` holds."""
        if self.user_history is not None:
            arrays[HISTORY] = self._histories(frame)
        if len(next(iter(arrays.values()))) == 0:
            width = len(self.classes) if self.task == "multiclass" else None
            return np.zeros((0, width) if width else (0,), np.float32)
        model = self.model  # built outside the lock (it takes its own)
        with self._predict_lock:
            out = model.predict(arrays, batch_size=batch_size, verbose=0)
        out = np.asarray(out, np.float32)
        return out if self.task == "multiclass" else out[:, 0]

    def _histories(self, frame):
        """Each row's user's latest positive items (zeros if unknown)."""
        users = frame[self.user_column]
        if not isinstance(users, pd.Series):  # a pyarrow column
            users = users.to_pandas()
        rows = self._user_rows.get_indexer(canonical_strings(users))
        length = self.user_history.shape[1]
        padded = np.vstack([self.user_history, np.zeros((1, length), np.int32)])
        return padded[rows]

    def pair_frame(self, user_ids, item_ids):
        """The feature rows of (user, item) pairs, from the bundle's tables.

        Item-side columns come from the item table, the others from the
        user's latest training row. An unknown user or item keeps its id and
        gets nulls elsewhere (the features' missing-value handling).

        Args:
            user_ids, item_ids: 1-D sequences of equal length.

        Returns:
            pandas DataFrame, one row per pair.
        """
        if not self.user_column:
            raise ValueError(
                "This bundle was trained on a table without user and item "
                'ids (data.user = ""), so it has no pairs to score. Fix: '
                "score whole rows with `predict(frame)` (`recsys score`)."
            )
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        if user_ids.shape != item_ids.shape or user_ids.ndim != 1:
            raise ValueError(
                "`user_ids` and `item_ids` must be 1-D and of equal length. "
                f"Received shapes {user_ids.shape} and {item_ids.shape}"
            )
        users = self._rows(self.users, self._user_rows, user_ids)
        items = self._rows(self.items, self._item_rows, item_ids)
        users[self.user_column] = user_ids
        items[self.item_column] = item_ids
        users = users.drop(columns=list(items.columns), errors="ignore")
        return pd.concat([users, items], axis=1)

    @staticmethod
    def _rows(table, index, ids):
        rows = index.get_indexer(canonical_strings(pd.Series(ids)))
        out = table.iloc[np.maximum(rows, 0)].reset_index(drop=True)
        if (rows < 0).any():
            out = out.astype(object)
            out.loc[rows < 0, :] = None
        return out

    def score_pairs(self, user_ids, item_ids):
        """Scores (user, item) pairs: see `pair_frame` and `predict`."""
        if self.task == "multiclass":
            raise ValueError(
                "score_pairs needs a binary or regression model to rank by; "
                "this bundle is multiclass."
            )
        # Not `predict`, which warns of values never learned: a pair's are
        # the bundle's own tables' (a new user or item aside, unknown by
        # design), and a recommender scores pairs by the thousand.
        frame = self.pair_frame(user_ids, item_ids)
        return self._scores(frame, self.preprocessor.transform(frame))
