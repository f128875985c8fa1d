"""Config of `model.kind = "two_tower"` (retrieval, the default kind).

Sections `[data]`, `[features.<column>]`, `[model]`, `[train]`, `[index]`
and `[evaluate]`; the keys, in this order, are those of the config dict and
of a bundle's manifest.
"""

from typing import Literal

import pydantic
from pydantic import Field

from recsys.config.common import Distribution
from recsys.config.common import InteractionsData
from recsys.config.common import KindConfig
from recsys.config.common import Number
from recsys.config.common import Optimizer
from recsys.config.common import Precision
from recsys.config.common import Section
from recsys.config.common import Split
from recsys.config.features import FeatureTables
from recsys.config.features import features_field
from recsys.errors import ConfigError


class TwoTowerData(InteractionsData):
    """`[data]`: where the interactions are and which columns mean what."""

    display: str = Field(
        default="",
        description='Item column shown by `recsys recommend` ("" for none).',
    )
    path: str = Field(
        default="",
        description=(
            "A directory of Parquet shards to stream instead of loading "
            '`source` whole (recsys.kinds.two_tower_streamed); "" for none. '
            "Relative to the config file."
        ),
    )


class TwoTowerModel(Section):
    """`[model]`: the query and candidate towers and the retrieval loss."""

    kind: Literal["two_tower"] = Field(
        default="two_tower", description="The model kind: two-tower retrieval."
    )
    query_features: list[str] = Field(
        default=[],
        description="Features the query (user) tower reads.",
    )
    candidate_features: list[str] = Field(
        default=[],
        description=(
            "Features the candidate (item) tower reads; must include the "
            "item column."
        ),
    )
    history_length: int = Field(
        default=10,
        ge=0,
        description=(
            "The query tower also pools the user's latest items, up to this "
            "many (0 for none); needs a [features.<item>] table."
        ),
    )
    embedding_dim: int = Field(
        default=64,
        ge=1,
        description="Size of the query and candidate embeddings.",
    )
    combine: str = Field(
        default="sum",
        description=(
            'How a tower merges its features\' embeddings: "sum" or "concat".'
        ),
    )
    normalize: bool = Field(
        default=False,
        description="L2-normalize both embeddings (cosine scores).",
    )
    temperature: Number = Field(
        default=1.0,
        gt=0,
        description="Scores are divided by it before the softmax.",
    )
    logq_correction: bool = Field(
        default=True,
        description=(
            "Subtract the log of each candidate's in-batch sampling "
            "probability from its score (popularity correction)."
        ),
    )
    logq_weight: Number = Field(
        default=1.0,
        ge=0,
        description="Weight of the logQ correction (above 1 over-corrects).",
    )
    remove_accidental_hits: bool = Field(
        default=True,
        description=(
            "Mask in-batch negatives that are the row's own positive item."
        ),
    )


class TwoTowerTrain(Section):
    """`[train]`: optimization, devices and checkpoints."""

    epochs: int = Field(
        default=3, ge=1, description="Passes over the training data."
    )
    batch_size: int = Field(
        default=512,
        ge=1,
        description="Interactions per step (in-batch negatives).",
    )
    optimizer: Optimizer = Field(
        default="adagrad", description="Keras optimizer by name."
    )
    learning_rate: Number = Field(
        default=0.1, gt=0, description="Learning rate."
    )
    seed: int = Field(default=0, description="Random seed of the whole run.")
    distribution: Distribution = Field(
        default="none",
        description=(
            'Devices (JAX backend, recsys.training.distribution): "none", '
            '"data" (DataParallel) or "model" (ModelParallel: embedding '
            "tables split across `model_shards` devices, batches across the "
            "rest)."
        ),
    )
    model_shards: int = Field(
        default=2,
        ge=1,
        description='Devices an embedding table is split across ("model").',
    )
    mixed_precision: Precision = Field(
        default="off",
        description='Keras mixed precision: "off", "float16" or "bfloat16".',
    )
    sparse_updates: bool = Field(
        default=True,
        description=(
            "JAX: a step updates only the embedding rows its batch looked up "
            "(recsys.models.sparse_updates; tables under 16 rows per lookup "
            "of a step stay dense); Adam and SGD with momentum are then "
            "their lazy row-wise versions. false: dense Keras updates."
        ),
    )
    checkpoint_every: int = Field(
        default=1000,
        ge=-1,
        description=(
            "Resumable jobs (recsys.training.checkpoint): a checkpoint every "
            "N steps and at each epoch end (0: epoch ends only, -1: none); "
            "the same command resumes."
        ),
    )
    job_dir: str = Field(
        default="",
        description=('Where checkpoints go ("" = the output path + ".job").'),
    )


class IndexSection(Section):
    """`[index]`: the nearest-neighbour index over the candidates."""

    kind: str = Field(
        default="auto",
        description=(
            '"auto" (brute force up to 4,096 items, ScaNN above), "scann" '
            'or "brute_force".'
        ),
    )
    num_leaves: int = Field(
        default=0,
        description=(
            "ScaNN partitions; 0 chooses from the catalog size "
            "(recsys.index.scann_index.default_options)."
        ),
    )
    num_leaves_to_search: int = Field(
        default=0, description="ScaNN partitions searched per query; 0 chooses."
    )
    reorder: int = Field(
        default=0,
        description="ScaNN candidates re-scored exactly; 0 chooses.",
    )


class RetrievalEvaluate(Section):
    """`[evaluate]`: the split reported and the cut-offs of HR@k."""

    split: Split = Field(
        default="test",
        description=(
            '"test" reports the protocol test split; "validation" trains on '
            "the training part minus its own last fifth and reports that, "
            "for tuning."
        ),
    )
    ks: list[int] = Field(
        default=[10, 50, 100],
        description="Cut-offs k of the reported HR@k: distinct, positive.",
    )

    @pydantic.field_validator("ks")
    @classmethod
    def _check_ks(cls, ks: list[int]) -> list[int]:
        if not ks or any(k < 1 for k in ks) or len(set(ks)) != len(ks):
            raise ConfigError(
                "evaluate.ks must be a non-empty list of distinct positive "
                "integers (the k of HR@k), e.g. [10, 50, 100]. "
                f"Received: {ks!r}"
            )
        return ks


class TwoTowerConfig(KindConfig):
    """A whole `model.kind = "two_tower"` config.

    Example:

    ```python
    config = recsys.config.typed_config(
        recsys.load_config("configs/movielens_two_tower.toml")
    )
    config.model.embedding_dim  # 32
    ```
    """

    data: TwoTowerData = TwoTowerData()
    features: FeatureTables = features_field()
    model: TwoTowerModel = TwoTowerModel()
    train: TwoTowerTrain = TwoTowerTrain()
    index: IndexSection = IndexSection()
    evaluate: RetrievalEvaluate = RetrievalEvaluate()

    @pydantic.model_validator(mode="after")
    def _check_references(self) -> "TwoTowerConfig":
        model, item = self.model, self.data.item
        for side in ("query_features", "candidate_features"):
            for name in getattr(model, side):
                if name not in self.features:
                    raise ConfigError(
                        f"model.{side} names '{name}', which has no "
                        f"[features.{name}] table. Declared features: "
                        f"{sorted(self.features)}"
                    )
        if item not in model.candidate_features:
            raise ConfigError(
                f"model.candidate_features must include the item column "
                f"'{item}' (it identifies candidates). Received: "
                f"{model.candidate_features}"
            )
        if model.history_length > 0 and item not in self.features:
            raise ConfigError(
                f"model.history_length > 0 needs a [features.{item}] table."
            )
        return self
